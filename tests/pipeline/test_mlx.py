"""MLX for real on CPU (mlx[cpu]): LoRA training on the tiny model, and PEFT <-> MLX adapters that
give the same logits."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("mlx.core")
pytest.importorskip("mlx_lm")
pytest.importorskip("peft")

from gateway.facade.launch import launch
from providers.jobdir import JobDir
from providers.mlx.adapters import mlx_to_peft, peft_to_mlx
from tests.support.job_files import local_job as _job

IDS = [[5, 6, 7, 8, 9, 10, 11, 12]]


def _torch_logits(base: Path, adapter: Path | None) -> np.ndarray:
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
    if adapter is not None:
        model = PeftModel.from_pretrained(model, adapter)
    with torch.no_grad():
        return model(torch.tensor(IDS)).logits.numpy()


def _mlx_logits(base: Path, adapter: Path | None) -> np.ndarray:
    import mlx.core as mx
    from mlx_lm.utils import load

    model, _ = load(str(base), adapter_path=str(adapter) if adapter else None)
    return np.array(model(mx.array(IDS)).astype(mx.float32))


def _random_peft(base: Path, out: Path, **lora) -> Path:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(1)
    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
    cfg = LoraConfig(
        r=4, lora_alpha=8, target_modules="all-linear", init_lora_weights=False, **lora
    )
    peft = get_peft_model(model, cfg)
    with torch.no_grad():
        for name, p in peft.named_parameters():
            if "lora_" in name:
                p.mul_(0.3)
    peft.save_pretrained(out)
    return out


def test_mlx_trains_for_real_and_its_adapter_matches_in_peft(tmp_path, tiny):
    spec = _job(tmp_path, tiny, n=32, valid=4, epochs=3)
    job = launch(spec, backend="mlx")
    rec = job.wait(interval=0.5)
    assert rec.state == "succeeded", rec.error
    jobdir = JobDir(Path(rec.remote["jobdir"]))
    losses = [m["loss"] for m in jobdir.metrics() if m.get("loss") is not None]
    assert len(losses) >= 3 and losses[-1] < losses[0]
    assert any(m.get("eval_loss") is not None for m in jobdir.metrics())
    adapter = Path(job.artifact().uri)
    cfg = json.loads((adapter / "adapter_config.json").read_text())
    assert cfg["r"] == 8 and cfg["lora_alpha"] == pytest.approx(16)  # scale 2.0 x rank 8
    mlx_side = _mlx_logits(tiny, adapter / "mlx")
    peft_side = _torch_logits(tiny, adapter)
    assert np.abs(mlx_side - peft_side).max() <= 1e-4
    assert np.abs(peft_side - _torch_logits(tiny, None)).max() > 1e-3  # it learned something


@pytest.mark.parametrize("kind", ["lora", "rslora", "dora"])
def test_peft_to_mlx_and_back_keep_the_logits(tmp_path, tiny, kind):
    extra = (
        {"use_rslora": True} if kind == "rslora" else {"use_dora": True} if kind == "dora" else {}
    )
    peft_dir = _random_peft(tiny, tmp_path / "peft", **extra)
    reference = _torch_logits(tiny, peft_dir)
    assert np.abs(reference - _torch_logits(tiny, None)).max() > 1e-3
    mlx_dir = peft_to_mlx(peft_dir, tmp_path / "mlx", tiny)
    assert np.abs(_mlx_logits(tiny, mlx_dir) - reference).max() <= 1e-4
    back = mlx_to_peft(mlx_dir, tmp_path / "back", tiny)
    assert np.abs(_torch_logits(tiny, back) - reference).max() <= 1e-4


def test_mlx_refuses_what_it_cannot_do(tmp_path, tiny):
    from gateway.errors import PlanError

    with pytest.raises(PlanError, match="mlx-lm trains SFT only"):
        launch(_job(tmp_path, tiny, objective="dpo"), backend="mlx")
