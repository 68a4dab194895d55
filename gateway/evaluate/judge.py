"""A judge model for what exact scorers cannot decide: pointwise (does the answer meet the
rubric?) for `--scorer judge`, and pairwise in both orders for `tunegate eval compare`
(evaluation.md section 3: swap positions, JSON verdicts, temperature 0, cost before the run).

The judge is any target that answers over HTTP (`URL#MODEL`, a deployment, a GGUF or MLX folder
started here); its verdict is constrained to a JSON schema with `response_format`, so even a
small local judge returns a parseable verdict. An in-process model cannot be a judge.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from gateway.errors import SpecError

POINTWISE = {
    "type": "object",
    "properties": {"pass": {"type": "boolean"}, "reason": {"type": "string"}},
    "required": ["pass"],
}
PAIRWISE = {
    "type": "object",
    "properties": {"winner": {"type": "string", "enum": ["A", "B", "tie"]}},
    "required": ["winner"],
}
DEFAULT_RUBRIC = "The answer is correct, complete and follows the instructions."
VERDICT_TOKENS = 48  # what a verdict may use


@dataclass(frozen=True)
class JudgePrice:
    input_per_1m: float = 0.0
    output_per_1m: float = 0.0

    @classmethod
    def parse(cls, text: str | None) -> JudgePrice:
        """`0.15/0.60`: USD per 1M input / output tokens (a local judge costs 0)."""
        if not text:
            return cls()
        try:
            a, _, b = text.partition("/")
            return cls(float(a), float(b or a))
        except ValueError:
            raise SpecError(
                f"--judge-price {text!r} is not IN/OUT", fix="e.g. 0.15/0.60 (USD per 1M tokens)"
            ) from None


def estimate_usd(prompts: list[str], calls_each: int, price: JudgePrice) -> float:
    """About 4 characters a token, each verdict at most VERDICT_TOKENS."""
    tokens_in = sum(len(p) for p in prompts) / 4 * calls_each
    tokens_out = VERDICT_TOKENS * len(prompts) * calls_each
    return (tokens_in * price.input_per_1m + tokens_out * price.output_per_1m) / 1e6


def check_budget(usd: float, cap: float) -> None:
    if usd > cap:
        raise SpecError(
            f"the judge would cost about ${usd:.2f}, over --max-judge-usd ${cap:.2f}",
            fix="raise --max-judge-usd, lower --limit, or use a local judge",
        )


def pointwise_prompt(question: str, answer: str, reference: str, rubric: str) -> str:
    return (
        "You grade one answer against a rubric. Reply with JSON "
        '{"pass": true|false, "reason": "..."}.\n\n'
        f"Rubric: {rubric}\n\nQuestion:\n{question}\n\nReference answer:\n{reference}\n\n"
        f"Answer to grade:\n{answer}\n"
    )


def pairwise_prompt(question: str, first: str, second: str, rubric: str) -> str:
    return (
        "You compare two answers to one question. Reply with JSON "
        '{"winner": "A"|"B"|"tie"}. Judge only quality, not length or position.\n\n'
        f"Rubric: {rubric}\n\nQuestion:\n{question}\n\nAnswer A:\n{first}\n\nAnswer B:\n{second}\n"
    )


Ask = Callable[[str, dict[str, Any]], str]  # (prompt, JSON schema) -> the judge's raw reply


def verdict_field(raw: str, key: str) -> Any:
    from gateway.evaluate.scorers import parse_json

    try:
        data = parse_json(raw)
    except ValueError:
        return None
    return data.get(key) if isinstance(data, dict) else None


@dataclass
class PairResult:
    line: int
    a_first: str | None  # the winner named with A shown first (A | B | tie | None: unreadable)
    b_first: str | None  # ... with B shown first, mapped back to A/B
    outcome: str  # a | b | tie | inconsistent

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def outcome(a_first: str | None, b_first: str | None) -> str:
    """Both orders agree, or the verdict is `inconsistent` (position bias, or noise)."""
    if a_first is None or b_first is None or a_first != b_first:
        return "inconsistent"
    return {"A": "a", "B": "b"}.get(a_first, "tie")


def pairwise(
    rows: list[tuple[int, str, str, str]], ask: Ask, rubric: str = DEFAULT_RUBRIC
) -> list[PairResult]:
    """(line, question, answer A, answer B) judged in both orders."""
    out = []
    for line, question, a, b in rows:
        first = verdict_field(ask(pairwise_prompt(question, a, b, rubric), PAIRWISE), "winner")
        swapped = verdict_field(ask(pairwise_prompt(question, b, a, rubric), PAIRWISE), "winner")
        back = {"A": "B", "B": "A"}.get(swapped, swapped) if swapped else None
        out.append(PairResult(line, first, back, outcome(first, back)))
    return out


def summary(results: list[PairResult]) -> dict[str, Any]:
    n = len(results)
    count = {k: sum(r.outcome == k for r in results) for k in ("a", "b", "tie", "inconsistent")}
    return {
        "n": n,
        "wins_a": count["a"],
        "wins_b": count["b"],
        "ties": count["tie"],
        "inconsistent": count["inconsistent"],
        "position_consistency": (n - count["inconsistent"]) / n if n else 0.0,
    }


def http_ask(url: str, model: str, headers: dict[str, str] | None = None) -> Ask:
    """A judge behind an OpenAI-compatible endpoint, its reply held to the schema."""
    from gateway.evaluate.generate import post_chat

    def ask(prompt: str, schema: dict[str, Any]) -> str:
        body = {
            "model": model,
            "messages": [{"role": "user", "content": prompt}],
            "max_tokens": VERDICT_TOKENS,
            "temperature": 0,
            "response_format": {"type": "json_object", "schema": schema},
        }
        return post_chat(url, body, headers).get("content") or ""

    return ask


def pointwise_scorer(
    ask: Ask, rubric: str, questions: dict[str, str]
) -> Callable[[Any, Any], float]:
    """A scorer for `task_eval`: 1 when the judge passes the answer (`questions` maps each
    reference to its question, so the judge sees what was asked)."""

    def judge(pred: Any, ref: Any) -> float:
        raw = ask(
            pointwise_prompt(questions.get(str(ref), ""), str(pred), str(ref), rubric), POINTWISE
        )
        return float(verdict_field(raw, "pass") is True)

    return judge


def parse_rubric(text: str | None) -> str:
    if not text:
        return DEFAULT_RUBRIC
    return json.loads(text)["rubric"] if text.strip().startswith("{") else text
