import pytest

from gateway.catalog.hardware import what_if
from gateway.errors import PlanError
from gateway.facade.plan import plan
from gateway.spec import JobSpec

ALL = {"local", "unsloth", "mlx", "together", "fireworks", "openai", "bedrock"}
LLAMA = "meta-llama/Llama-3.1-8B-Instruct"


def _plan(catalog, machine, env=None, **spec_kw):
    numbers = {
        "examples": spec_kw.pop("examples", 5000),
        "avg_tokens": spec_kw.pop("avg_tokens", 600),
    }
    spec = JobSpec(base_model=spec_kw.pop("base_model", LLAMA), **spec_kw)
    return plan(spec, catalog=catalog, machine=machine, env=env or {}, **numbers)


def test_every_provider_offers_and_every_refusal_has_a_reason(catalog, cpu_machine):
    result = _plan(catalog, cpu_machine, method="qlora", training={"epochs": 2})
    assert {o.provider for o in result.offers} == ALL
    for offer in result.offers:
        assert offer.feasible or offer.reason.strip()
    assert result.choice is not None and result.choice.feasible
    # without keys hosted offers stay feasible for planning but say what launching needs
    together = next(o for o in result.offers if o.provider == "together")
    assert together.feasible and any("TOGETHER_API_KEY" in n for n in together.needs)
    openai = next(o for o in result.offers if o.provider == "openai")
    assert not openai.feasible and "only its own models" in openai.reason


def test_an_offer_that_cannot_be_launched_from_here_never_wins(catalog, cpu_machine):
    """SkyPilot does not rent from Modal: its rows stay in the table, priced and marked, and
    rank after every offer tunegate can start, even dearer ones. RunPod cannot mount a bucket
    but is launchable: the offer pins the cloud, and its worker syncs the job's folder."""
    result = _plan(catalog, cpu_machine, method="qlora", base_model="meta-llama/Llama-3.1-8B")
    feasible = result.feasible
    blocked = [o for o in feasible if not o.launchable]
    assert blocked and {o.cloud for o in blocked} == {"modal"}
    assert all("not launchable from here: SkyPilot does not rent" in o.needs[0] for o in blocked)
    order = [o.launchable for o in feasible]
    assert order == sorted(order, reverse=True)  # every launchable one before any that is not
    dearer = [
        o for o in feasible if o.launchable and o.total_usd.likely > blocked[0].total_usd.likely
    ]
    assert dearer  # the ranking, not the prices, put them first
    choice = result.choice
    assert choice.launchable and choice.cloud == "runpod"  # the cheapest, as priced
    assert choice.settings["resources.cloud"] == "runpod"
    assert any("worker keeps the job's folder" in n for n in choice.notes)


def test_keys_present_clear_the_needs(catalog, cpu_machine):
    result = _plan(catalog, cpu_machine, env={"TOGETHER_API_KEY": "x"})
    together = next(o for o in result.offers if o.provider == "together")
    assert together.needs == []


def test_no_gpu_machine_never_trains_locally_with_qlora(catalog, cpu_machine):
    result = _plan(catalog, cpu_machine, method="qlora")
    here = [o for o in result.offers if o.kind == "local"]
    assert here and all(not o.feasible for o in here)
    assert any("bitsandbytes" in o.reason for o in here if o.provider == "local")
    assert any("NVIDIA GPU" in o.reason for o in here if o.provider == "unsloth")
    assert result.choice.kind != "local"


def test_local_only_keeps_only_this_machine(catalog):
    gpu = what_if(catalog, "rtx4090-24gb")
    result = _plan(
        catalog,
        gpu,
        method="qlora",
        constraints={"local_only": True},
        serving={"tokens_per_day": "1M"},
    )
    assert result.choice.kind == "local" and result.choice.hardware == "rtx4090-24gb"
    for offer in result.offers:
        if offer.kind != "local":
            assert not offer.feasible and "local_only" in offer.reason


def test_local_only_on_a_cpu_with_an_8b_model_is_infeasible_with_reasons(catalog, cpu_machine):
    result = _plan(catalog, cpu_machine, constraints={"local_only": True})
    assert result.choice is None
    assert "No offer is feasible" in result.explain()


def test_budget_refuses_expensive_training(catalog, cpu_machine):
    result = _plan(
        catalog,
        cpu_machine,
        base_model="meta-llama/Llama-3.1-70B-Instruct",
        method="qlora",
        constraints={"max_usd": 5},
    )
    refused = [o for o in result.offers if "max_usd" in o.reason]
    assert refused
    assert result.choice is None or result.choice.train_usd.likely <= 5


def test_deadline_refuses_slow_offers(catalog, cpu_machine):
    result = _plan(catalog, cpu_machine, method="qlora", constraints={"deadline_hours": 1})
    slow = [o for o in result.offers if "deadline" in o.reason]
    assert slow and all(o.train_hours.likely > 1 for o in slow)
    assert result.choice.train_hours.likely <= 1


def test_allow_list(catalog, cpu_machine):
    result = _plan(catalog, cpu_machine, constraints={"providers": ["fireworks", "bedrock"]})
    assert result.choice.provider in {"fireworks", "bedrock"}
    assert all(not o.feasible for o in result.offers if o.provider not in {"fireworks", "bedrock"})


def test_owned_gpu_what_if_trains_locally_for_pennies(catalog):
    result = _plan(catalog, what_if(catalog, "h100-80gb"), method="qlora")
    assert result.choice.kind == "local"
    assert result.choice.train_usd.likely < 1  # electricity only


def test_choice_flips_between_hosted_and_self_hosted_around_breakeven(catalog, cpu_machine):
    probe = _plan(catalog, cpu_machine, serving={"tokens_per_day": "1M"})
    breakeven = probe.breakeven_tokens_per_day
    assert breakeven and 1e6 < breakeven < 1e10
    low = _plan(catalog, cpu_machine, serving={"tokens_per_day": int(breakeven / 4)})
    high = _plan(catalog, cpu_machine, serving={"tokens_per_day": int(breakeven * 4)})
    assert low.choice.kind == "hosted"
    assert high.choice.kind in ("rented", "local")
    assert (
        high.choice.serve_usd_month.likely
        < next(o for o in high.offers if o.provider == low.choice.provider).serve_usd_month.likely
    )


def test_mac_what_if_makes_mlx_feasible_and_dpo_rules(catalog):
    mac = what_if(catalog, "m4-max-128gb")
    sft = _plan(catalog, mac, base_model="Qwen/Qwen3-4B", method="lora")
    mlx = next(o for o in sft.offers if o.provider == "mlx")
    assert mlx.feasible and mlx.kind == "local"
    dpo = _plan(catalog, mac, base_model="meta-llama/Llama-3.2-3B-Instruct", objective="dpo")
    assert "SFT only" in next(o for o in dpo.offers if o.provider == "mlx").reason
    assert "runs SFT here, not DPO" in next(o for o in dpo.offers if o.provider == "bedrock").reason


def test_closed_model_goes_to_openai(catalog, cpu_machine):
    result = _plan(
        catalog, cpu_machine, base_model="gpt-4.1-mini", serving={"tokens_per_day": "1M"}
    )
    assert result.choice.provider == "openai"
    assert result.choice.serve_usd_month.likely > 0
    assert all(
        "closed model" in o.reason
        or "does not tune" in o.reason
        or "does not customize" in o.reason
        for o in result.offers
        if o.provider != "openai"
    )


def test_bedrock_serving_is_provisioned_throughput(catalog, cpu_machine):
    result = _plan(catalog, cpu_machine, serving={"tokens_per_day": "1M"})
    bedrock = next(o for o in result.offers if o.provider == "bedrock")
    assert "Provisioned Throughput" in bedrock.serve
    assert bedrock.serve_usd_month.likely > 1000


def test_plan_needs_data(catalog, cpu_machine):
    with pytest.raises(PlanError, match="no data"):
        plan(JobSpec(base_model=LLAMA), catalog=catalog, machine=cpu_machine, env={})


def test_json_shape(catalog, cpu_machine):
    data = _plan(catalog, cpu_machine).to_json()
    assert set(data) >= {"choice", "offers", "breakeven_tokens_per_day", "tokens"}
    for offer in data["offers"]:
        for key in (
            "provider",
            "hardware",
            "kind",
            "feasible",
            "reason",
            "train_usd",
            "train_hours",
            "serve_usd_month",
            "total_usd",
            "vram_gb",
        ):
            assert key in offer
        for key in ("train_usd", "train_hours", "serve_usd_month", "total_usd"):
            assert offer[key]["low"] <= offer[key]["likely"] <= offer[key]["high"]
    assert data["tokens"]["examples"] == 5000 and data["tokens"]["trained_tokens"] > 0
