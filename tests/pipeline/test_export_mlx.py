"""MLX exports of a tiny SentencePiece Llama with a LoRA adapter, run by mlx-lm (mlx[cpu]) and
checked against HF + PEFT: merged float models give the same greedy tokens, quantized ones agree
at their stated rate, and the adapter converts to an mlx-lm adapter folder that mlx-lm loads."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("mlx_lm")
pytest.importorskip("peft")

from gateway.errors import ExportError
from gateway.facade.export import export
from tests.support.tiny_models import lora_adapter

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def adapter(tiny_sp, tmp_path_factory):
    return lora_adapter(
        tiny_sp, tmp_path_factory.mktemp("mlx-adapter") / "lora", r=8, lora_alpha=16
    )


@pytest.mark.parametrize("mlx_type", ["float32", "float16", "q8", "q4"])
def test_merged_mlx_export_is_verified(adapter, tmp_path, mlx_type):
    result = export(adapter, "mlx", quant=mlx_type, out=tmp_path / "mlx", group_size=64)
    report = result.verification
    assert report.passed, report.failures
    assert report.tokenizer_match and report.chat_template and report.prompts == 4
    folder = tmp_path / "mlx"
    assert result.kind == "mlx" and result.files == [folder]
    config = json.loads((folder / "config.json").read_text())
    if mlx_type.startswith("q"):
        assert config["quantization"]["bits"] == int(mlx_type[1:])
        assert config["quantization"]["group_size"] == 64
        assert report.top1_agreement >= report.threshold["top1"]
    else:
        assert "quantization" not in config and report.greedy_exact == 1.0
    assert (folder / "tokenizer.model").exists()  # mlx-lm drops it; copied back for llama.cpp
    assert json.loads((folder / "export.json").read_text())["verification"]["passed"]


def test_mlx_generates_the_fine_tune(adapter, tmp_path):
    """The exported folder works with mlx-lm's own generate, as users run it."""
    import mlx_lm
    from mlx_lm.sample_utils import make_sampler

    export(adapter, "mlx", quant="float32", out=tmp_path / "m")
    model, tok = mlx_lm.load(str(tmp_path / "m"))
    prompt = tok.apply_chat_template(
        [{"role": "user", "content": "What does the for statement do?"}], add_generation_prompt=True
    )
    text = mlx_lm.generate(model, tok, prompt, max_tokens=8, sampler=make_sampler(temp=0.0))
    assert isinstance(text, str) and text


def test_adapter_only_is_an_mlx_lm_adapter(adapter, tmp_path):
    result = export(adapter, "mlx", adapter_only=True, out=tmp_path / "ad")
    assert result.kind == "mlx-adapter" and result.verification.passed, result.verification.failures
    cfg = json.loads((tmp_path / "ad" / "adapter_config.json").read_text())
    assert cfg["lora_parameters"]["rank"] == 8 and cfg["lora_parameters"]["scale"] == 2.0
    assert (tmp_path / "ad" / "adapters.safetensors").exists()


def test_bad_mlx_requests_are_refused(adapter, tmp_path):
    with pytest.raises(ExportError, match="unknown MLX type"):
        export(adapter, "mlx", quant="q4_k_m", out=tmp_path / "x")
    with pytest.raises(ExportError, match="not quantized"):
        export(adapter, "mlx", quant="q4", adapter_only=True, out=tmp_path / "y")


def test_verification_catches_a_missing_adapter(tiny_sp, adapter, tmp_path):
    """The check can fail: the base alone (adapter not merged) is told apart from the fine-tune."""
    from exporters.mlx import convert_to_mlx, verify_mlx

    base = convert_to_mlx(tiny_sp, tmp_path / "base", "float32")
    same = verify_mlx(base, source=tiny_sp, adapter=None, mlx_type="float32")
    assert same.passed and same.max_abs_logit_delta < 1e-3
    wrong = verify_mlx(base, source=tiny_sp, adapter=adapter, mlx_type="float32")
    assert not wrong.passed and wrong.max_abs_logit_delta > 0.05
