"""Real GGUF exports of a tiny SentencePiece Llama, checked in llama.cpp against HF/PEFT."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

pytest.importorskip("llama_cpp")
pytest.importorskip("peft")

from exporters.converter import get_converter
from exporters.gguf import convert
from exporters.verify import verify_gguf
from gateway.errors import ExportError
from gateway.facade.export import export
from tests.support.tiny_models import lora_adapter

pytestmark = pytest.mark.slow


@pytest.fixture(autouse=True)
def _cache(converter_cache, monkeypatch):
    monkeypatch.setenv("TUNEGATE_CACHE_DIR", str(converter_cache))


@pytest.fixture(scope="module")
def adapters(tiny_sp, tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("adapters")
    return {
        "lora": lora_adapter(tiny_sp, root / "lora", r=8, lora_alpha=16),
        "rslora": lora_adapter(tiny_sp, root / "rslora", r=16, lora_alpha=8, use_rslora=True),
        "dora": lora_adapter(tiny_sp, root / "dora", r=4, lora_alpha=8, use_dora=True),
        "patterns": lora_adapter(
            tiny_sp,
            root / "patterns",
            r=8,
            lora_alpha=16,
            rank_pattern={"down_proj": 2},
            alpha_pattern={"v_proj": 4},
        ),
    }


def _tensor_types(path: Path) -> set[str]:
    from gguf import GGUFReader  # reading only; conversion never uses the wheel

    return {t.tensor_type.name for t in GGUFReader(str(path)).tensors}


@pytest.mark.parametrize(
    ("quant", "types"), [("f16", {"F16"}), ("q8_0", {"Q8_0"}), ("q4_k_m", {"Q4_K", "Q6_K"})]
)
def test_merged_gguf_within_thresholds(adapters, tmp_path, quant, types) -> None:
    result = export(adapters["lora"], "gguf", quant=quant, out=tmp_path / "out")
    report = result.verification
    assert report is not None and report.passed, report.failures
    assert report.tokenizer_match and report.chat_template
    assert report.end_of_turn["ends_generation_in_llama_cpp"]
    if quant == "f16":
        assert report.max_abs_logit_delta <= 0.05 and report.top1_agreement == 1.0
    gguf = result.files[0]
    assert gguf.parent == tmp_path / "out" and gguf.name.endswith(f"-{quant}.gguf")
    assert types <= _tensor_types(gguf)  # K-quants really applied (hidden 256)
    record = json.loads((tmp_path / "out" / "export.json").read_text())
    assert record["verification"]["passed"] and gguf.name in record["sha256"]
    assert not list(tmp_path.glob(".out.partial-*"))  # the temp name is gone
    assert not list((tmp_path / "out").glob("_scratch-*"))


def test_gguf_adapter_matches_peft(adapters, tmp_path) -> None:
    result = export(adapters["lora"], "gguf", adapter_only=True, out=tmp_path / "a")
    assert result.kind == "gguf-adapter" and result.verification.passed
    assert result.verification.max_abs_logit_delta <= 0.05


@pytest.mark.parametrize("case", ["rslora", "patterns"])
def test_scale_rewrites_are_right_and_needed(adapters, tiny_sp, tmp_path, case) -> None:
    result = export(adapters[case], "gguf", adapter_only=True, out=tmp_path / "a")
    assert result.verification.passed and result.verification.top1_agreement == 1.0
    # the same adapter through llama.cpp's converter as it is: silently wrong scale
    conv = get_converter()
    import subprocess
    import sys

    raw = tmp_path / "raw.gguf"
    subprocess.run(
        [
            sys.executable,
            str(conv.lora_script),
            str(adapters[case]),
            "--base",
            str(tiny_sp),
            "--outfile",
            str(raw),
            "--outtype",
            "f16",
        ],
        env=conv.env(),
        check=True,
        capture_output=True,
    )
    base_gguf = convert(tiny_sp, tmp_path / "base.gguf")[0]
    wrong = verify_gguf(
        base_gguf, source=tiny_sp, adapter=adapters[case], lora_gguf=raw, gguf_type="f16"
    )
    assert not wrong.passed and wrong.max_abs_logit_delta > 0.05


def test_dora_adapter_refused_with_merge_route(adapters, tmp_path) -> None:
    with pytest.raises(ExportError, match="DoRA") as err:
        export(adapters["dora"], "gguf", adapter_only=True, out=tmp_path / "a")
    assert "without --adapter-only" in str(err.value)
    assert not (tmp_path / "a").exists() and not list(tmp_path.glob(".a.partial-*"))
    merged = export(adapters["dora"], "gguf", quant="f16", out=tmp_path / "b")
    assert merged.verification.passed


def test_failed_verification_is_not_renamed_into_place(adapters, tiny_sp, tmp_path) -> None:
    broken = tmp_path / "broken-base"
    shutil.copytree(tiny_sp, broken)
    (broken / "tokenizer.model").unlink()  # llama.cpp then falls back to another vocab route
    with pytest.raises(ExportError, match="verification"):
        export(adapters["lora"], "gguf", base=broken, out=tmp_path / "out")
    assert not (tmp_path / "out").exists()
    report = json.loads((tmp_path / "out.unverified" / "export.json").read_text())
    assert report["verification"]["passed"] is False
    assert any("tokenizes" in f for f in report["verification"]["failures"])


def test_turn_end_token_found_or_missing(tiny_sp) -> None:
    from transformers import AutoTokenizer

    from exporters.verify import turn_end_token

    tok = AutoTokenizer.from_pretrained(tiny_sp)
    assert turn_end_token(tok) == tok.convert_tokens_to_ids("<|im_end|>")
    tok.chat_template = "{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}{% endfor %}"
    assert turn_end_token(tok) is None


def test_existing_target_is_never_overwritten(adapters, tmp_path) -> None:
    (tmp_path / "out").mkdir()
    with pytest.raises(ExportError, match="already exists"):
        export(adapters["lora"], "gguf", out=tmp_path / "out")
