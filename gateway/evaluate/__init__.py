"""`tunegate eval`: did the fine-tune help, and did the export keep it (docs/eval.md).

This first part is the task eval (layer 2): `task_eval(target, data, against=...)` with the
`exact`, `regex`, `json` and `tool` scorers, paired statistics and a stored report.
"""

from gateway.evaluate.task import TaskReport, task_eval

__all__ = ["TaskReport", "task_eval"]
