"""Unsloth on a CPU-only machine: the spec maps to its arguments, and it is refused with a reason."""

from __future__ import annotations

import pytest

from gateway.errors import PlanError
from gateway.facade.plan import plan
from gateway.spec import JobSpec
from providers.unsloth.worker import unsloth_config


def _cfg(method="qlora", **lora):
    spec = JobSpec.from_dict(
        {"base_model": "HuggingFaceTB/SmolLM2-135M-Instruct", "method": method, "lora": lora}
    )
    p = plan(spec, examples=200, avg_tokens=300)
    return {"spec": p.spec.model_dump(mode="json"), "base_path": "/models/smollm2"}


def test_spec_maps_onto_fastlanguagemodel_arguments():
    kw = unsloth_config(_cfg("qlora", rank=32, alpha=64, rslora=True))
    assert kw["load"]["load_in_4bit"] is True and kw["load"]["model_name"] == "/models/smollm2"
    assert kw["peft"]["r"] == 32 and kw["peft"]["lora_alpha"] == 64 and kw["peft"]["use_rslora"]
    assert kw["peft"]["use_gradient_checkpointing"] == "unsloth"
    assert "down_proj" in kw["peft"]["target_modules"] and not kw["peft"]["use_dora"]
    assert unsloth_config(_cfg("dora"))["peft"]["use_dora"] is True
    assert unsloth_config(_cfg("lora"))["load"]["load_in_4bit"] is False
    with pytest.raises(ValueError, match="full fine-tuning"):
        unsloth_config(_cfg("full"))


def test_refused_without_an_nvidia_gpu(cpu_machine, tmp_path):
    from gateway.facade.launch import launch

    spec = JobSpec.from_dict(
        {
            "base_model": "HuggingFaceTB/SmolLM2-135M-Instruct",
            "method": "lora",
            "train": str(tmp_path / "t.jsonl"),
        }
    )
    (tmp_path / "t.jsonl").write_text('{"text": "hello"}\n')
    p = plan(spec, machine=cpu_machine)
    here = next(o for o in p.offers if o.provider == "unsloth" and o.kind == "local")
    assert not here.feasible and "needs an NVIDIA GPU" in here.reason
    with pytest.raises(
        PlanError, match="unsloth cannot run this job here: Unsloth needs an NVIDIA GPU"
    ):
        launch(p, backend="unsloth")
