"""Token statistics for planning, computed in one streaming pass.

Without a tokenizer this is an approximation (characters / 4 plus a few tokens of chat-template
overhead per message), flagged as such; the dataset toolkit replaces it with the base model's
real tokenizer when one is available.
"""

from __future__ import annotations

from array import array
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gateway.errors import SpecError


@dataclass
class DatasetReport:
    """How big the data is, in the units the planner needs.

    For preference (DPO) data a record's tokens count both sequences of the pair
    (prompt + chosen and prompt + rejected), since both are processed.
    """

    examples: int
    avg_tokens: float
    p95_tokens: float | None = None
    max_tokens: float | None = None
    validation_examples: int = 0
    validation_avg_tokens: float = 0.0
    approximate: bool = True
    source: str = "given"
    lengths: array = field(default_factory=lambda: array("I"), repr=False)

    @property
    def total_tokens(self) -> float:
        return self.examples * self.avg_tokens

    @property
    def validation_tokens(self) -> float:
        return self.validation_examples * self.validation_avg_tokens

    def to_json(self) -> dict[str, Any]:
        return {
            "examples": self.examples,
            "avg_tokens": round(self.avg_tokens, 1),
            "p95_tokens": self.p95_tokens,
            "max_tokens": self.max_tokens,
            "dataset_tokens": round(self.total_tokens),
            "validation_examples": self.validation_examples,
            "validation_tokens": round(self.validation_tokens),
            "approximate": self.approximate,
            "source": self.source,
        }


def _lengths(path: Path) -> array:
    """Approximate tokens per example, read with the toolkit's reader; stops at the first
    unreadable line (planning on a broken file would be wrong, `data check` lists them all)."""
    from gateway.data.formats import detect_format, read_records, shape_problem, to_example
    from gateway.data.tokens import approx_tokens

    lengths = array("I")
    for raw in read_records(path):
        fmt = None if raw.error else detect_format(raw.data)
        problem = raw.error or (
            "unrecognised record" if fmt is None else shape_problem(raw.data, fmt)
        )
        if problem:
            raise SpecError(
                problem,
                where=f"{path}:{raw.line}",
                fix=f"run `tunegate data check {path}` for every problem in the file",
            )
        lengths.append(approx_tokens(to_example(raw.line, raw.data, fmt))[0])
    return lengths


def quick_report(train: Path, validation: Path | None = None) -> DatasetReport:
    """Approximate token statistics of a training file (and validation file) in one pass each."""
    if not Path(train).is_file():
        raise SpecError(f"training file not found: {train}", fix="check `train:` in the job file")
    lengths = _lengths(Path(train))
    if not lengths:
        raise SpecError("the training file has no examples", where=str(train))
    ordered = sorted(lengths)
    report = DatasetReport(
        examples=len(lengths),
        avg_tokens=sum(lengths) / len(lengths),
        p95_tokens=float(ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))]),
        max_tokens=float(ordered[-1]),
        approximate=True,
        source=str(train),
        lengths=lengths,
    )
    if validation is not None:
        if not Path(validation).is_file():
            raise SpecError(
                f"validation file not found: {validation}",
                fix="check `validation:` in the job file",
            )
        v = _lengths(Path(validation))
        report.validation_examples = len(v)
        report.validation_avg_tokens = sum(v) / len(v) if v else 0.0
    return report
