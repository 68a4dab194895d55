"""What `tg.distill` takes and gives back."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gateway.facade.distill.asking import AskReport, Settings
from gateway.facade.distill.bill import Bill
from gateway.facade.distill.filters import Filtered, Rules
from gateway.facade.distill.judging import JudgeRule
from gateway.facade.distill.teacher import GATEWAY_URL, Teacher


@dataclass(frozen=True)
class DistillOptions:
    teacher: str
    prompts: Path | None = None
    from_traffic: str | None = None
    since: float = 0.0
    eval_data: Path | None = None  # prompts overlapping it are dropped before any call
    settings: Settings = field(default_factory=Settings)
    rules: Rules = field(default_factory=Rules)
    judge: JudgeRule | None = None  # the last rejection rule, its cost capped
    max_usd: float | None = None
    price: str | None = None  # IN/OUT per 1M tokens, for a teacher the catalog does not price
    gateway: str = GATEWAY_URL
    accept_terms_risk: bool = False
    heldout: float = 0.1
    out: Path | None = None
    concurrency: int = 4
    pilot: int = 8
    student: str | None = None
    serve: int = 0  # tokens/day the student will serve: its plan, and the cost comparison
    student_config: dict[str, Any] = field(default_factory=dict)  # merged into its job file
    dry_run: bool = False
    progress: bool = True


@dataclass
class DistillResult:
    out: Path
    teacher: Teacher
    counts: dict[str, int]  # prompts read, repeats, contaminated, train, heldout
    bill_before: Bill
    bill: Bill | None = None
    asked: AskReport | None = None
    filtered: Filtered | None = None
    notes: list[str] = field(default_factory=list)
    files: dict[str, str] = field(default_factory=dict)
    tokens: tuple[int, int] = (0, 0)  # prompt and answer tokens the teacher counted
    judge_usd: float = 0.0  # the judge's verdicts asked by this run (estimated)

    @property
    def complete(self) -> bool:
        a = self.asked
        return a is not None and not (a.stopped_at_cap or a.interrupted or a.failed)

    def to_json(self) -> dict[str, Any]:
        f = self.filtered
        return {
            "out": str(self.out),
            "teacher": self.teacher.to_json(),
            "counts": self.counts,
            "bill_before": self.bill_before.to_json(),
            "bill": self.bill.to_json() if self.bill else None,
            "asked": self.asked.to_json() if self.asked else None,
            "dropped": f.counts() if f else None,
            "kept": len(f.kept) if f else None,
            "complete": self.complete,
            "notes": self.notes,
            "files": self.files,
            "tokens": list(self.tokens),
        }
