"""Task-eval scorers and statistics, table-driven: each case is (answer, reference, score)."""

from __future__ import annotations

import json

import pytest

from gateway.errors import SpecError
from gateway.evaluate.scorers import exact, get_scorer, make_json, make_regex, tool
from gateway.evaluate.stats import bootstrap_ci, mcnemar_exact, paired, verdict

CALL = {
    "type": "function",
    "function": {"name": "get_weather", "arguments": '{"city": "Paris", "days": 3}'},
}
OTHER = {"type": "function", "function": {"name": "get_time", "arguments": '{"tz": "CET"}'}}


@pytest.mark.parametrize(
    ("pred", "ref", "want"),
    [
        ("The Answer is 4.", "answer is 4", 1.0),
        ("  paris ", "Paris", 1.0),
        ("an apple", "the apple", 1.0),
        ("4", "5", 0.0),
        ("", "x", 0.0),
    ],
)
def test_exact(pred, ref, want):
    assert exact(pred, ref) == want


@pytest.mark.parametrize(
    ("pred", "ref", "want"),
    [
        ("so the total is 42 apples", "Total: 42", 1.0),
        ("so the total is 41 apples", "Total: 42", 0.0),
        ("no number here", "Total: 42", 0.0),
    ],
)
def test_regex_compares_the_first_match(pred, ref, want):
    assert make_regex(r"\d+")(pred, ref) == want


SCHEMA = {
    "type": "object",
    "required": ["city", "days"],
    "properties": {"days": {"type": "integer"}},
}


@pytest.mark.parametrize(
    ("pred", "ref", "schema", "want"),
    [
        (
            '```json\n{"city": "Paris ", "days": 3}\n```',
            '{"city": "paris", "days": 3}',
            SCHEMA,
            1.0,
        ),
        ('{"days": 3.0, "city": "Paris"}', '{"city": "Paris", "days": 3}', None, 1.0),
        ('{"days": "3", "city": "Paris"}', '{"city": "Paris", "days": 3}', SCHEMA, 0.0),
        ('{"city": "Paris"}', '{"city": "Paris", "days": 3}', None, 0.0),
        ("Paris, 3 days", '{"city": "Paris", "days": 3}', None, 0.0),
        ('{"ok": true}', '{"ok": 1}', None, 0.0),
    ],
)
def test_json(pred, ref, schema, want):
    assert make_json(schema)(pred, ref) == want


def _calls(*calls):
    return json.dumps({"tool_calls": list(calls)})


@pytest.mark.parametrize(
    ("pred", "ref", "want"),
    [
        (_calls(CALL), _calls(CALL), 1.0),
        (  # arguments as an object, 3.0 for 3, case and spaces in strings
            _calls(
                {"function": {"name": "get_weather", "arguments": {"days": 3.0, "city": "paris "}}}
            ),
            _calls(CALL),
            1.0,
        ),
        (_calls(OTHER, CALL), _calls(CALL, OTHER), 1.0),  # parallel calls: any order
        (_calls(CALL), _calls(CALL, OTHER), 0.0),
        (
            _calls(
                {"function": {"name": "get_weather", "arguments": '{"city": "Rome", "days": 3}'}}
            ),
            _calls(CALL),
            0.0,
        ),
        ("I would call get_weather", _calls(CALL), 0.0),
    ],
)
def test_tool(pred, ref, want):
    assert tool(pred, ref) == want


def test_unknown_or_incomplete_scorers_are_refused():
    with pytest.raises(SpecError, match="one of"):
        get_scorer("bleu")
    with pytest.raises(SpecError, match="--pattern"):
        get_scorer("regex")
    with pytest.raises(SpecError, match="not a regular expression"):
        get_scorer("regex", pattern="(")


def test_mcnemar_exact_values():
    assert mcnemar_exact(0, 0) == 1.0
    assert mcnemar_exact(5, 5) == 1.0
    assert mcnemar_exact(0, 10) == pytest.approx(2 / 1024)
    assert mcnemar_exact(1, 9) == pytest.approx(2 * 11 / 1024)


def test_bootstrap_is_seeded_and_brackets_the_mean():
    diffs = [100.0] * 30 + [0.0] * 70
    lo, hi = bootstrap_ci(diffs, seed=1)
    assert bootstrap_ci(diffs, seed=1) == (lo, hi)
    assert lo < 30 < hi and hi - lo < 25


@pytest.mark.parametrize(
    ("low", "high", "want"),
    [
        (1, 9, "improved"),
        (-2, 4, "ok"),
        (-14, -11, "fail"),
        (-9, -4, "warn"),
        (-6, 2, "inconclusive"),
    ],
)
def test_verdict_only_when_the_interval_is_clear(low, high, want):
    assert verdict(low, high) == want


def test_paired_small_samples_are_inconclusive_large_ones_decide():
    base = [1.0, 0.0] * 10
    tuned = [1.0, 1.0] + [1.0, 0.0] * 9  # one example fixed out of 20
    small = paired(base, tuned)
    assert small.delta == pytest.approx(5.0) and small.verdict in ("inconclusive", "ok", "improved")
    assert small.p_value == 1.0
    big = paired([0.0] * 200, [1.0] * 60 + [0.0] * 140)
    assert big.verdict == "improved" and big.p_value < 1e-9
    drop = paired([1.0] * 200, [0.0] * 60 + [1.0] * 140)
    assert drop.verdict == "fail" and drop.delta == pytest.approx(-30.0)
    with pytest.raises(ValueError):
        paired([1.0], [1.0, 0.0])
