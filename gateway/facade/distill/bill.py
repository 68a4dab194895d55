"""The teacher's bill, before the first call and again after a small pilot.

Before: the prompts' tokens (characters / 4 plus the chat overhead, said to be approximate)
times the input price, and the answers anywhere from nothing to `max_tokens` each. After the
pilot (a few real calls, journaled, so nothing is paid twice): the answers' measured length
gives the output side, low / likely / high as the plan shows numbers, and the measured prompt
tokens correct the approximation of the rest.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from gateway.facade.distill.asking import Settings, approx_tokens
from gateway.facade.distill.prompts import Prompt
from gateway.facade.distill.teacher import Teacher
from gateway.journal.teacher import ANSWERED, TeacherAnswer
from gateway.util.units import percentile


@dataclass
class Bill:
    calls: int
    prompt_tokens: int
    output_tokens: tuple[float, float, float]  # per call: low, likely, high
    usd: tuple[float, float, float]  # the whole dataset: low, likely, high
    worst_usd: float  # every answer as long as max_tokens allows
    already_usd: float = 0.0  # answers the journal holds (not paid again)
    measured: int = 0  # pilot answers the output side comes from (0: before any call)
    priced: bool = True
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def lines(self) -> list[str]:
        low, likely, high = self.usd
        how = f"from {self.measured} answers" if self.measured else "before any call"
        out = [
            f"{self.calls} teacher calls, ~{self.prompt_tokens:,} prompt tokens",
            f"cost ({how}): ${low:.4f} - ${high:.4f}, likely ${likely:.4f}; at most "
            f"${self.worst_usd:.4f} if every answer runs to max_tokens",
        ]
        if self.already_usd:
            out.append(f"${self.already_usd:.4f} of answers are already journaled (not paid again)")
        return out + self.notes


def _prompt_side(prompts: list[Prompt], s: Settings, ratio: float) -> int:
    return round(sum(approx_tokens(s.messages(p)) for p in prompts) * s.n * ratio)


def before_calls(
    teacher: Teacher, prompts: list[Prompt], s: Settings, known: dict[str, TeacherAnswer]
) -> Bill:
    """What the dataset can cost before anything is asked: answers between 0 and max_tokens."""
    calls = len(prompts) * s.n
    tokens = _prompt_side(prompts, s, 1.0)
    price = teacher.price
    already = sum(a.usd or 0.0 for a in known.values() if a.state == ANSWERED)
    notes = ["prompt tokens are approximate (characters / 4 and 4 a message)"]
    if not price.known:
        notes.append(f"{teacher.ref} has no price on record: state one with --price IN/OUT")
    low = price.usd(tokens, 0)
    high = price.usd(tokens * 1.25, calls * s.max_tokens)
    return Bill(
        calls, tokens, (0.0, s.max_tokens / 2, float(s.max_tokens)),
        (low, (low + high) / 2, high), high, already, 0, price.known, notes,
    )  # fmt: skip


def after_pilot(
    teacher: Teacher, prompts: list[Prompt], s: Settings, pilot: list[TeacherAnswer],
    pilot_prompts: list[Prompt], known: dict[str, TeacherAnswer],
) -> Bill:  # fmt: skip
    """The bill with the pilot's answers measured: output tokens per call from their spread,
    prompt tokens scaled by what the teacher counted against the approximation."""
    answered = [a for a in pilot if a.state == ANSWERED and a.completion_tokens is not None]
    if not answered:
        return before_calls(teacher, prompts, s, known)
    outs = [float(a.completion_tokens or 0) for a in answered]
    approx = sum(approx_tokens(s.messages(p)) for p in pilot_prompts) * s.n
    ratio = sum(a.prompt_tokens or 0 for a in answered) / approx if approx else 1.0
    ratio = ratio if ratio > 0 else 1.0
    tokens = _prompt_side(prompts, s, ratio)
    calls = len(prompts) * s.n
    per_call = (
        percentile(outs, 0.1) or 0.0,
        sum(outs) / len(outs),
        percentile(outs, 0.9) or float(s.max_tokens),
    )
    usd = tuple(teacher.price.usd(tokens, calls * o) for o in per_call)
    already = sum(a.usd or 0.0 for a in known.values() if a.state == ANSWERED)
    worst = teacher.price.usd(tokens, calls * s.max_tokens)
    notes = [f"prompt tokens measured on {len(answered)} pilot answers (x{ratio:.2f} the estimate)"]
    if not teacher.price.known:
        notes.append(f"{teacher.ref} has no price on record: state one with --price IN/OUT")
    return Bill(
        calls, tokens, per_call, (usd[0], usd[1], usd[2]), worst, already, len(answered),
        teacher.price.known, notes,
    )  # fmt: skip
