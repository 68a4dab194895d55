"""Token statistics for planning, computed in one streaming pass.

Without a tokenizer this is an approximation (characters / 4 plus a few tokens of chat-template
overhead per message), flagged as such; the dataset toolkit replaces it with the base model's
real tokenizer when one is available.
"""

from __future__ import annotations

import json
from array import array
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gateway.errors import SpecError

CHARS_PER_TOKEN = 4.0  # rule of thumb for English BPE vocabularies (OpenAI tokenizer docs)
TEMPLATE_TOKENS_PER_MESSAGE = 4


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


def _record_tokens(record: Any) -> float:
    """Approximate tokens of one record, counting a DPO pair's prompt once per sequence."""
    if isinstance(record, dict) and "chosen" in record and "rejected" in record:
        prompt = _text_tokens(record.get("prompt", ""))
        return 2 * prompt + _text_tokens(record["chosen"]) + _text_tokens(record["rejected"])
    if isinstance(record, dict) and "preferred_output" in record:
        prompt = _text_tokens(record.get("input", ""))
        return (
            2 * prompt
            + _text_tokens(record["preferred_output"])
            + _text_tokens(record.get("non_preferred_output", ""))
        )
    return _text_tokens(record)


def _text_tokens(value: Any) -> float:
    if isinstance(value, str):
        return len(value) / CHARS_PER_TOKEN
    if isinstance(value, list):
        return sum(_text_tokens(v) for v in value)
    if isinstance(value, dict):
        extra = TEMPLATE_TOKENS_PER_MESSAGE if "role" in value or "from" in value else 0
        return extra + sum(
            _text_tokens(v) for k, v in value.items() if k not in ("role", "from", "weight")
        )
    return 0.0


def _iter_records(path: Path):
    """Yield (line_number, record); JSON arrays count records from 1."""
    with path.open("rb") as fh:
        head = fh.read(1024).lstrip()
    if head.startswith(b"["):
        try:
            records = json.loads(path.read_text(encoding="utf-8"))
        except (ValueError, UnicodeDecodeError) as exc:
            raise SpecError(f"not a valid JSON array: {exc}", where=str(path)) from None
        yield from enumerate(records, start=1)
        return
    with path.open("r", encoding="utf-8", errors="replace") as fh:
        for number, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                yield number, json.loads(line)
            except ValueError as exc:
                raise SpecError(
                    f"invalid JSON ({exc.msg}; expected one JSON object per line)",
                    where=f"{path}:{number}",
                    fix="run `tunegate data check` for every problem in the file",
                ) from None


def _lengths(path: Path) -> array:
    lengths = array("I")
    for _, record in _iter_records(path):
        lengths.append(max(1, round(_record_tokens(record))))
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
