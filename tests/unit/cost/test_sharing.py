"""One serving fleet for many fine-tunes of a base (`gateway.cost.sharing`), against the worked
numbers of ../shared/reference/serving-scale.md §3 (Llama-3.1-8B, RunPod RTX 3090 at ~$285 a
replica-month, Together serverless LoRA at $0.18/1M, a 15 % multi-LoRA loss)."""

from __future__ import annotations

from datetime import date

import pytest

from gateway.cost.sharing import overhead, sharing
from gateway.facade.plan import plan
from gateway.spec import JobSpec

MODEL = "meta-llama/Llama-3.1-8B-Instruct"


@pytest.fixture
def llama(catalog):
    return catalog.model(MODEL)


def test_ten_fine_tunes_at_20m_a_day_share_three_replicas_instead_of_ten(llama, catalog):
    s = sharing(llama, 20e6, [20e6] * 9, catalog, hosted_usd_per_1m=0.18)
    assert s.adapters == 10 and s.total_tokens_per_day == 200e6
    assert s.own is not None and round(s.own.usd_month.likely) == 285  # one fleet each
    assert s.shared is not None and s.shared.replicas == 3
    assert round(s.shared.usd_month.likely) == 854  # the reference's $854, not 10 x $285
    assert s.share_usd_month.likely == pytest.approx(s.shared.usd_month.likely / 10)
    assert "shared by 10 fine-tunes" in s.shared.label


def test_the_break_even_per_fine_tune_falls_by_the_number_sharing(llama, catalog):
    alone = sharing(llama, 5e6, [], catalog, hosted_usd_per_1m=0.18)
    ten = sharing(llama, 5e6, [5e6] * 9, catalog, hosted_usd_per_1m=0.18)
    assert alone.breakeven_tokens_per_day == pytest.approx(52e6, rel=0.01)
    assert ten.breakeven_tokens_per_day == pytest.approx(5.2e6, rel=0.01)
    assert ten.shared is not None and ten.shared.replicas == 1
    assert round(ten.share_usd_month.likely, 1) == 28.5


def test_one_more_fine_tune_is_free_with_headroom_and_a_replica_without(llama, catalog):
    roomy = sharing(llama, 1e6, [1e6] * 3, catalog)
    assert roomy.marginal_usd_month.likely == 0
    # one replica holds ~79M tokens/day at 15 % loss and 60 % utilisation: 4 x 19M fills it
    full = sharing(llama, 19e6, [19e6] * 3, catalog)
    assert full.shared is not None and full.shared.replicas == 1
    # the next fine-tune needs more than that replica: at most one more of it, or a cheaper
    # bigger fleet (the difference between the cheapest fleets for 5 and for 4)
    assert 0 < full.marginal_usd_month.likely <= 285


def test_one_adapter_pays_no_multi_lora_loss(catalog):
    assert overhead(catalog, 1).likely == 0
    loss = overhead(catalog, 2)
    assert (loss.low, loss.likely, loss.high) == (0.05, 0.15, 0.35)
    assert "assumption" in catalog.calibration["multi_lora_overhead"]["source"]


def test_the_plan_shows_the_shared_route_and_warns_of_routes_closing(catalog, cpu_machine):
    spec = JobSpec.from_options(None, base=MODEL, serve="20M", share_with=9, method="qlora")
    result = plan(
        spec, examples=5000, avg_tokens=600, catalog=catalog, machine=cpu_machine,
        env={}, today=date(2026, 12, 4),
    )  # fmt: skip
    got = result.to_json()["sharing"]
    assert got["adapters"] == 10 and got["shared"]["replicas"] == 3
    assert got["hosted_usd_per_1m"] == 0.18
    assert any("v1 dedicated endpoints close on 2026-12-31" in w for w in result.warnings)
    later = plan(
        spec, examples=5000, avg_tokens=600, catalog=catalog, machine=cpu_machine,
        env={}, today=date(2027, 3, 1),
    )  # fmt: skip
    assert not any("close on" in w for w in later.warnings)
