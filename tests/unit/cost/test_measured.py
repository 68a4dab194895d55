"""Measured throughput fed back into the plan: the same base model's own rate, and for another
model of the same size class the model's estimate scaled by how far off it was."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from gateway.cost import measured
from gateway.facade.plan import plan
from gateway.spec import JobSpec

SMALL, ALSO_SMALL, LARGER = (
    "HuggingFaceTB/SmolLM2-135M",
    "HuggingFaceTB/SmolLM2-360M",
    "Qwen/Qwen3-0.6B",
)


def test_size_classes_are_about_twice_apart():
    assert measured.size_class(0.135) == measured.size_class(0.36) == "≤0.5B"
    assert measured.size_class(0.6) == "≤1B" and measured.size_class(8.0) == "≤9B"
    assert measured.size_class(405) == ">80B" and measured.size_class(None) is None


def _local(catalog, machine, model: str):
    spec = JobSpec(base_model=model, method="lora")
    offers = plan(spec, catalog=catalog, machine=machine, env={}, examples=158, avg_tokens=80)
    return next(o for o in offers.offers if o.provider == "local" and o.kind == "local")


def _finished(offer, tokens_per_s: float, model: str):
    """A finished local job as the runner records it, planned with `offer`."""
    rec = SimpleNamespace(
        id=f"tg-{model[-4:]}",
        provider="local",
        base_model=model,
        spec={"method": "lora"},
        offer=json.loads(json.dumps(offer.to_json())),
    )
    measured.record(rec, {"tokens_per_s": tokens_per_s})


def test_a_measured_job_corrects_the_plan_of_its_size_class(catalog, cpu_machine):
    first = _local(catalog, cpu_machine, SMALL)
    modelled = first.tokens_per_second.likely
    assert first.model_params_b == pytest.approx(0.135, rel=0.1)
    _finished(first, 3 * modelled, SMALL)
    row = measured.lookup("local", "cpu", SMALL, "lora")
    assert row["estimated_tokens_per_s"] == pytest.approx(modelled, rel=0.01)  # 3 digits kept
    # the same model: its own measured rate
    again = _local(catalog, cpu_machine, SMALL)
    assert again.tokens_per_second.likely == pytest.approx(3 * modelled)
    assert again.modelled_tokens_per_second.likely == pytest.approx(modelled)
    assert any("measured on this machine" in a for a in again.assumptions)
    # another model of the same class: its own estimate, scaled x3, and said so
    other = _local(catalog, cpu_machine, ALSO_SMALL)
    assert any("throughput scaled x3.0" in a and "≤0.5B" in a for a in other.assumptions)
    assert other.tokens_per_second.likely == pytest.approx(
        3 * other.modelled_tokens_per_second.likely, rel=0.01
    )
    assert other.train_hours.likely < first.train_hours.likely * 2
    # a model of another class is left as the model says
    larger = _local(catalog, cpu_machine, LARGER)
    assert larger.modelled_tokens_per_second is None
    assert not any("measured" in a or "scaled" in a for a in larger.assumptions)


def test_a_second_measurement_keeps_the_modelled_figure_not_the_replaced_one(catalog, cpu_machine):
    """A job planned from a measurement records what the model said, so the correction for
    its class does not collapse to x1 after the second run."""
    first = _local(catalog, cpu_machine, SMALL)
    _finished(first, 2 * first.tokens_per_second.likely, SMALL)
    second = _local(catalog, cpu_machine, SMALL)  # planned at the measured rate
    _finished(second, 2 * first.tokens_per_second.likely, SMALL)
    fix = measured.correction("local", "cpu", "lora", 0.36)
    assert fix is not None and fix.factor == pytest.approx(2.0, rel=0.02)
