"""The judge's logic with scripted verdicts (the judge model itself is tested in the pipeline
test, served by llama-cpp-python): both orders, position bias caught as `inconsistent`, costs
estimated and capped before anything runs."""

from __future__ import annotations

import json

import pytest

from gateway.errors import SpecError
from gateway.evaluate.judge import (
    JudgePrice,
    check_budget,
    estimate_usd,
    outcome,
    pairwise,
    summary,
)

ROWS = [(1, "q1", "short", "a much longer answer"), (2, "q2", "long answer here", "tiny")]


def _first_shown(prompt: str, schema: dict) -> str:
    return json.dumps({"winner": "A"})  # position bias: always the first one shown


def _longer(prompt: str, schema: dict) -> str:
    a = prompt.split("Answer A:\n")[1].split("\n\nAnswer B:")[0]
    b = prompt.split("Answer B:\n")[1].strip()
    return json.dumps({"winner": "A" if len(a) > len(b) else "B"})


@pytest.mark.parametrize(
    ("first", "second", "want"),
    [
        ("A", "A", "a"),
        ("B", "B", "b"),
        ("tie", "tie", "tie"),
        ("A", "B", "inconsistent"),
        (None, "A", "inconsistent"),
    ],
)
def test_outcome(first, second, want):
    assert outcome(first, second) == want


def test_a_position_biased_judge_is_inconsistent_every_time():
    results = pairwise(ROWS, _first_shown)
    assert [r.outcome for r in results] == ["inconsistent", "inconsistent"]
    assert summary(results)["position_consistency"] == 0.0


def test_a_consistent_judge_picks_the_same_answer_in_both_orders():
    results = pairwise(ROWS, _longer)
    assert [r.outcome for r in results] == ["b", "a"]
    s = summary(results)
    assert (s["wins_a"], s["wins_b"], s["position_consistency"]) == (1, 1, 1.0)


def test_unreadable_verdicts_count_as_inconsistent():
    results = pairwise(ROWS[:1], lambda prompt, schema: "I like both")
    assert results[0].a_first is None and results[0].outcome == "inconsistent"


def test_cost_is_estimated_and_capped_before_the_run():
    price = JudgePrice.parse("1.0/4.0")
    assert (price.input_per_1m, price.output_per_1m) == (1.0, 4.0)
    usd = estimate_usd(["x" * 4000] * 100, 2, price)  # 1,000 tokens in, 48 out, x200 calls
    assert usd == pytest.approx((200_000 * 1.0 + 48 * 200 * 4.0) / 1e6)
    check_budget(usd, 1.0)
    with pytest.raises(SpecError, match="over --max-judge-usd"):
        check_budget(usd, 0.01)
    assert JudgePrice.parse(None).input_per_1m == 0
    with pytest.raises(SpecError, match="IN/OUT"):
        JudgePrice.parse("cheap")
