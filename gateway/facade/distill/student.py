"""The punchline: the student trained on the distilled set, evaluated on the held-out prompts
with the teacher's answers as references, and priced against the teacher at the same volume:
"the student answers like the teacher on 93% (95% CI 88-96%) at 4% of its monthly cost".

Training is the normal route (`launch` plans, journals and creates it once; `wait` runs the
job file's `eval:`), so everything a job has (status, logs, resume, export) works here too.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from gateway.facade.distill.options import DistillResult

DAYS_PER_MONTH = 30.0


@dataclass(frozen=True)
class Agreement:
    """A share of held-out prompts on which the scorer finds the answer equals the teacher's,
    with its Wilson 95% interval (honest at 0% and 100% and for small n)."""

    share: float
    low: float
    high: float
    n: int

    @classmethod
    def of(cls, scores: list[float], z: float = 1.96) -> Agreement:
        n = len(scores)
        if n == 0:
            return cls(0.0, 0.0, 1.0, 0)
        p = sum(scores) / n
        centre = (p + z * z / (2 * n)) / (1 + z * z / n)
        half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
        return cls(p, max(0.0, min(p, centre - half)), min(1.0, max(p, centre + half)), n)

    def words(self) -> str:
        return f"{self.share:.0%} (95% CI {self.low:.0%}-{self.high:.0%}, n={self.n})"


@dataclass
class StudentReport:
    job_id: str
    state: str
    agreement: Agreement | None = None  # the student with the teacher
    base_agreement: Agreement | None = None  # the student's base with the teacher, before
    teacher_usd_month: float | None = None
    student_usd_month: float | None = None
    tokens_per_day: int = 0
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def lines(self) -> list[str]:
        out = [f"student job {self.job_id}: {self.state}"]
        if self.agreement is not None:
            line = f"the student answers like the teacher on {self.agreement.words()}"
            if self.teacher_usd_month and self.student_usd_month is not None:
                ratio = self.student_usd_month / self.teacher_usd_month
                line += (
                    f" at {ratio:.0%} of its monthly cost (${self.student_usd_month:,.0f} vs "
                    f"${self.teacher_usd_month:,.0f} at {self.tokens_per_day:,} tokens/day)"
                )
            out.append(line)
        if self.base_agreement is not None:
            out.append(f"its base, before distilling: {self.base_agreement.words()}")
        return out + self.notes


def teacher_monthly_usd(result: DistillResult, tokens_per_day: int) -> float | None:
    """The teacher's bill for a month at `tokens_per_day`, split in and out as its answers
    were in this run (measured tokens)."""
    price = result.teacher.price
    prompt, completion = result.tokens
    if not price.known or not tokens_per_day or prompt + completion == 0:
        return None
    out_share = completion / (prompt + completion)
    daily = price.usd(tokens_per_day * (1 - out_share), tokens_per_day * out_share)
    return daily * DAYS_PER_MONTH


def train_student(
    result: DistillResult, *, backend: str | None = None, progress: bool = True
) -> StudentReport:
    """Train the student the job file describes, run its eval, and compare."""
    from gateway.facade.launch import launch
    from gateway.journal import Journal
    from gateway.spec import JobSpec

    spec = JobSpec.from_yaml(Path(result.files["job.yaml"]))
    with Journal() as journal:
        job = launch(spec, backend=backend, journal=journal)
        rec = job.wait(progress=progress)
        report = StudentReport(job.id, rec.state, tokens_per_day=spec.serving.tokens_per_day)
        evaluation = job.evaluation
        estimate = journal.get(job.id).estimate or {}
    task = next((r for r in (evaluation.reports if evaluation else []) if hasattr(r, "rows")), None)
    if task is None:
        why = evaluation.error if evaluation and evaluation.error else "no held-out prompts"
        report.notes.append(f"no agreement measured: {why}")
        return report
    report.agreement = Agreement.of([r.tuned_score for r in task.rows])
    report.base_agreement = Agreement.of([r.base_score for r in task.rows])
    serve = (estimate.get("serve_usd_month") or {}).get("likely")
    report.student_usd_month = float(serve) if serve is not None else None
    report.teacher_usd_month = teacher_monthly_usd(result, report.tokens_per_day)
    if not report.tokens_per_day:
        report.notes.append("no volume stated (--serve): no monthly cost comparison")
    return report
