"""Keep only good teacher answers: each rule drops what it names, in a fixed order, and the
report counts the drops by rule with examples, so a user sees what a rule costs them.

Rules: no answer; an empty one; one cut at `max_tokens` (finish reason `length`); a refusal; a
length outside `--min-tokens`/`--max-answer-tokens`; `--keep` (a scorer of the eval: `regex:RE`,
`json`, `json:SCHEMA.json`, `exact`, `tool`: checked against the prompt's reference where the
prompt file has one, else on the answer alone: it must match, parse, validate); and
near-duplicates among the kept examples (word-trigram MinHash, the data toolkit's); last, with
`--judge`, a judge's verdict on what is left (`gateway.facade.distill.judging`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gateway.data.hygiene import NEAR_THRESHOLD
from gateway.errors import SpecError
from gateway.facade.distill.prompts import Prompt
from gateway.journal.teacher import ANSWERED, TeacherAnswer

# how refusals open, in the major teachers' house styles (English)
REFUSAL = re.compile(
    r"^\W*(i'?m sorry|i am sorry|sorry, (?:but )?i can|i can(?:no|')t (?:help|assist|comply|"
    r"provide|do that)|i cannot (?:help|assist|comply|provide)|i(?:'m| am) (?:not able|unable) "
    r"to|as an ai(?: language model)?)",
    re.IGNORECASE,
)
RULES = ("no answer", "empty", "truncated", "refusal", "length", "keep", "near-duplicate", "judge")


@dataclass(frozen=True)
class Item:
    prompt: Prompt
    sample: int
    answer: TeacherAnswer | None


@dataclass(frozen=True)
class Rules:
    truncated: bool = True
    refusals: bool = True
    min_tokens: int | None = None
    max_tokens: int | None = None
    keep: str | None = None
    near_duplicates: float | None = NEAR_THRESHOLD  # Jaccard, as `data check`; None: keep

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class Filtered:
    kept: list[Item]
    dropped: dict[str, list[Item]] = field(default_factory=dict)

    def counts(self) -> dict[str, int]:
        return {rule: len(self.dropped.get(rule, [])) for rule in RULES}


def keeper(spec: str | None) -> Any:
    """The `--keep` scorer as a function (answer, reference or None) -> passes."""
    if not spec:
        return None
    from gateway.evaluate.scorers import get_scorer

    name, _, arg = spec.partition(":")
    if name == "regex":
        score = get_scorer("regex", pattern=arg)
    elif name == "json":
        score = get_scorer("json", schema=Path(arg) if arg else None)
    elif name in ("exact", "tool") and not arg:
        score = get_scorer(name)
    else:
        raise SpecError(
            f"--keep {spec!r} is not a rule", fix="regex:RE, json, json:SCHEMA.json, exact or tool"
        )

    def passes(answer: str, reference: str | None) -> bool:
        if name == "exact" and reference is None:
            return True  # nothing to compare with: exact keeps everything
        return score(answer, reference if reference is not None else answer) >= 1.0

    return passes


def _rule(item: Item, rules: Rules, passes: Any) -> str | None:
    a = item.answer
    if a is None or a.state != ANSWERED or a.answer is None:
        return "no answer"
    if not a.answer.strip():
        return "empty"
    if rules.truncated and a.finish_reason == "length":
        return "truncated"
    if rules.refusals and REFUSAL.match(a.answer):
        return "refusal"
    n = a.completion_tokens or 0
    if (rules.min_tokens and n < rules.min_tokens) or (rules.max_tokens and n > rules.max_tokens):
        return "length"
    if passes is not None and not passes(a.answer, item.prompt.reference):
        return "keep"
    return None


def apply(rules: Rules, items: list[Item]) -> Filtered:
    passes = keeper(rules.keep)
    out = Filtered([])
    for item in items:
        rule = _rule(item, rules, passes)
        if rule is None:
            out.kept.append(item)
        else:
            out.dropped.setdefault(rule, []).append(item)
    if rules.near_duplicates is not None and len(out.kept) > 1:
        out.kept = _unique(out, rules.near_duplicates)
    return out


def _unique(out: Filtered, threshold: float) -> list[Item]:
    from gateway.data.formats import Example
    from gateway.data.hygiene import near_duplicates

    examples = [
        Example(i, "chat", "messages", messages=[*it.prompt.messages, _reply(it)])
        for i, it in enumerate(out.kept)
    ]
    later = {i for group in near_duplicates(examples, threshold) for i in sorted(group)[1:]}
    out.dropped.setdefault("near-duplicate", []).extend(out.kept[i] for i in sorted(later))
    return [it for i, it in enumerate(out.kept) if i not in later]


def _reply(item: Item) -> dict[str, Any]:
    return {"role": "assistant", "content": item.answer.answer if item.answer else ""}
