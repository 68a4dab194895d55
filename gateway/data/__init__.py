"""The dataset toolkit. For now: the token statistics the planner needs (`DatasetReport`)."""

from gateway.data.report import DatasetReport, quick_report

__all__ = ["DatasetReport", "quick_report"]
