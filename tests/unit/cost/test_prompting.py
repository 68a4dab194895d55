"""The arithmetic of a prompt against a fine-tune: requests from tokens, payback, and the
break-even volume on a per-token line and on an always-on staircase."""

from __future__ import annotations

import math

import pytest

from gateway.cost.prompting import (
    ArmTokens,
    breakeven_requests_per_day,
    payback_days,
    requests_per_day,
)
from gateway.util.units import DAYS_PER_MONTH


def test_requests_are_the_fine_tunes_tokens_over_its_request_size():
    tuned = ArmTokens("tuned", "fine-tune", prompt=40, completion=60)
    shots = ArmTokens("few-shot:5", "base + 5-shot", prompt=440, completion=60)
    r = requests_per_day(tuned, 200_000)
    assert r == 2_000
    assert shots.tokens_per_day(r) == 1_000_000  # the same requests, five times the tokens
    assert shots.output_share == pytest.approx(60 / 500)


def test_payback_days():
    # $1 a day saved pays back $10 of training in 10 days
    assert payback_days(DAYS_PER_MONTH, 10.0) == pytest.approx(10.0)
    assert payback_days(0.0, 10.0) is None and payback_days(-5.0, 10.0) is None


def test_breakeven_on_a_per_token_line_is_the_closed_form():
    # per token: the prompt's 400 extra tokens a request at $0.20 / 1M tokens
    per_request_month = 400 * 0.20 / 1e6 * DAYS_PER_MONTH
    training, horizon = 12.0, 30.0
    found = breakeven_requests_per_day(lambda r: r * per_request_month, training, horizon)
    exact = training / (per_request_month * horizon / DAYS_PER_MONTH)
    assert found == pytest.approx(exact, rel=1e-3)


def test_breakeven_on_a_staircase_is_where_the_prompt_needs_another_replica():
    # always on: one replica serves 10k requests a day; $300/month each
    def fleet(requests: float, tokens_per_request: float) -> float:
        return 300.0 * math.ceil(requests * tokens_per_request / 1e6)

    def extra(r: float) -> float:
        return fleet(r, 500) - fleet(r, 100)

    found = breakeven_requests_per_day(extra, training_usd=50.0, horizon_days=30.0)
    assert found is not None and 2_000 < found <= 2_000 * 1.001  # where 500-token requests fill one
    assert extra(found) > 0 and extra(1_999) == 0
    # nothing to pay back and no saving at any volume: no break-even
    assert breakeven_requests_per_day(lambda r: 0.0, 0.0, 30.0) is None
    # the prompt cannot be served at all above some volume: the fine-tune wins from there
    assert breakeven_requests_per_day(
        lambda r: float("inf") if r > 5_000 else 0.0, 10.0, 30.0
    ) == pytest.approx(5_000, rel=1e-3)


def test_each_arm_priced_on_the_plans_routes_at_the_same_requests(catalog):
    """The facade's pricing of a report's arms: the same requests, each arm's own tokens, on
    every route the plan considers; the sentences carry the saving and the payback."""
    from types import SimpleNamespace

    from gateway.evaluate.arms import ArmResult, Usage
    from gateway.evaluate.stats import paired
    from gateway.facade.prompt_cost import Pricing, price_arms
    from gateway.spec import JobSpec

    spec = JobSpec(base_model="meta-llama/Llama-3.1-8B-Instruct", serving={"tokens_per_day": "2M"})
    arm = ArmResult("few-shot:5", "base + 5-shot", paired([1.0, 1.0, 0.0, 1.0], [1.0] * 4))
    report = SimpleNamespace(
        arms=[arm],
        usage={
            "tuned": Usage("fine-tune", 40.0, 60.0, 4),
            "base": Usage("base", 40.0, 80.0, 4),
            "few-shot:5": Usage("base + 5-shot", 2040.0, 60.0, 4),
        },
    )
    pricing = Pricing(spec, 2e6, "stated", 20.0, "given")
    cost = price_arms(report, pricing, catalog)
    assert cost["requests_per_day"] == 20_000
    assert cost["arms"]["few-shot:5"]["tokens_per_day"] == 42_000_000
    assert any(r["route"].startswith("together:") for r in cost["routes"])
    (pay,) = cost["payback"]
    saving = cost["arms"]["few-shot:5"]["usd_month"] - cost["arms"]["tuned"]["usd_month"]
    assert pay["saving_usd_month"] == pytest.approx(saving) and saving > 0
    assert pay["payback_days"] == pytest.approx(20.0 / (saving / DAYS_PER_MONTH))
    (sentence,) = cost["sentences"]
    assert "2,000 fewer prompt tokens" in sentence and "/month less" in sentence
    assert "pays for its training ($20.00)" in sentence

    quiet = price_arms(report, Pricing(spec, 0.0, "stated", 20.0, "given"), catalog)
    assert "no serving volume" in quiet["sentences"][0]
    report.usage["few-shot:5"] = Usage("base + 5-shot", None, None, 4)
    assert "not measured" in price_arms(report, pricing, catalog)["sentences"][0]
