"""The shard-by-shard merge against PEFT's own merge_and_unload, on a model saved in shards."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

pytest.importorskip("peft")

from exporters.adapter import read_adapter, scale_of
from exporters.merge import INDEX, merge
from gateway.errors import ExportError
from tests.support.tiny_models import lora_adapter


@pytest.fixture(scope="module")
def sharded(tiny_sp, tmp_path_factory) -> Path:
    import torch
    from transformers import AutoModelForCausalLM

    out = tmp_path_factory.mktemp("sharded") / "model"
    model = AutoModelForCausalLM.from_pretrained(tiny_sp, dtype=torch.float32)
    model.save_pretrained(out, max_shard_size="1MB")
    for f in tiny_sp.iterdir():
        if not f.name.endswith(".safetensors") and not (out / f.name).exists():
            shutil.copy2(f, out / f.name)
    assert len(json.loads((out / INDEX).read_text())["weight_map"]) > 0
    assert len(list(out.glob("*.safetensors"))) >= 3
    return out


def _peft_merged(base: Path, adapter: Path) -> dict:
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
    return PeftModel.from_pretrained(model, adapter).merge_and_unload(safe_merge=True).state_dict()


def _ours(out: Path) -> dict:
    from safetensors.torch import load_file

    tensors = {}
    for shard in sorted(out.glob("*.safetensors")):
        tensors.update(load_file(shard))
    return tensors


CASES = {
    "lora": {"r": 8, "lora_alpha": 16},
    "rslora": {"r": 16, "lora_alpha": 8, "use_rslora": True},
    "dora": {"r": 4, "lora_alpha": 8, "use_dora": True},
    "patterns": {
        "r": 8,
        "lora_alpha": 16,
        "rank_pattern": {"down_proj": 2, "q_proj": 4},
        "alpha_pattern": {"v_proj": 3},
    },
    "modules_to_save": {
        "r": 4,
        "lora_alpha": 4,
        "target_modules": ["q_proj"],
        "modules_to_save": ["lm_head"],
    },
}


@pytest.mark.slow
@pytest.mark.parametrize("case", sorted(CASES))
def test_merge_matches_peft(sharded: Path, tmp_path: Path, case: str) -> None:
    adapter = lora_adapter(sharded, tmp_path / "adapter", **CASES[case])
    result = merge(adapter, sharded, tmp_path / "merged")
    assert result.merged > 0
    expected = _peft_merged(sharded, adapter)
    got = _ours(tmp_path / "merged")
    assert set(got) == set(expected)
    worst = max(float((got[k] - expected[k]).abs().max()) for k in got)
    assert worst <= 1e-4, (case, worst)
    changed = sum(1 for k in got if float((got[k] - _ours(sharded)[k]).abs().max()) > 0)
    assert changed == result.merged + result.replaced
    # same shard names and index; tokenizer files (tokenizer.model too) copied byte for byte
    assert sorted(p.name for p in (tmp_path / "merged").glob("*.safetensors")) == sorted(
        p.name for p in sharded.glob("*.safetensors")
    )
    for name in ("tokenizer.model", "tokenizer_config.json", "chat_template.jinja", INDEX):
        assert (tmp_path / "merged" / name).read_bytes() == (sharded / name).read_bytes()


def test_scale_rules_follow_peft() -> None:
    cfg = {
        "r": 16,
        "lora_alpha": 32,
        "rank_pattern": {"down_proj": 4},
        "alpha_pattern": {"v_proj": 8},
    }
    assert scale_of(cfg, "model.layers.0.self_attn.q_proj") == (16, 32.0, 2.0)
    assert scale_of(cfg, "model.layers.0.mlp.down_proj") == (4, 32.0, 8.0)
    assert scale_of(cfg, "model.layers.0.self_attn.v_proj") == (16, 8.0, 0.5)
    assert scale_of({**cfg, "use_rslora": True}, "model.layers.3.self_attn.q_proj")[2] == 8.0


def test_refuses_quantized_base_and_wrong_base(
    sharded: Path, tiny_sp: Path, tmp_path: Path
) -> None:
    adapter = lora_adapter(
        sharded, tmp_path / "adapter", r=4, lora_alpha=4, target_modules=["q_proj"]
    )
    qbase = tmp_path / "qbase"
    shutil.copytree(sharded, qbase)
    cfg = json.loads((qbase / "config.json").read_text())
    cfg["quantization_config"] = {"quant_method": "bitsandbytes", "load_in_4bit": True}
    (qbase / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ExportError, match="16-bit base"):
        merge(adapter, qbase, tmp_path / "out1")
    other = tmp_path / "other"
    other.mkdir()
    (other / "config.json").write_text("{}")
    import torch
    from safetensors.torch import save_file

    save_file({"model.embed_tokens.weight": torch.zeros(4, 4)}, str(other / "model.safetensors"))
    with pytest.raises(ExportError, match="does not have"):
        merge(adapter, other, tmp_path / "out2")


def test_refuses_what_it_cannot_merge(tmp_path: Path, sharded: Path) -> None:
    adapter = lora_adapter(sharded, tmp_path / "a", r=4, lora_alpha=4, target_modules=["q_proj"])
    cfg = json.loads((adapter / "adapter_config.json").read_text())
    (adapter / "adapter_config.json").write_text(json.dumps({**cfg, "fan_in_fan_out": True}))
    with pytest.raises(ExportError, match="fan_in_fan_out"):
        read_adapter(adapter)
    with pytest.raises(ExportError, match=r"no adapter_config\.json"):
        read_adapter(tmp_path)


def test_streamed_safetensors_round_trip(tmp_path):
    """The tensor-by-tensor writer produces a file safetensors reads back bit for bit."""
    import torch
    from safetensors import safe_open
    from safetensors.torch import load_file

    from exporters.merge import write_safetensors

    torch.manual_seed(0)
    tensors = {
        "a.bf16": torch.randn(3, 5).to(torch.bfloat16),
        "b.f32": torch.randn(7),
        "c.f16": torch.randn(2, 2, 2).to(torch.float16),
        "d.scalar": torch.tensor(3, dtype=torch.int64),
        "e.empty": torch.zeros(0, 4),
    }
    names = {torch.bfloat16: "BF16", torch.float32: "F32", torch.float16: "F16", torch.int64: "I64"}
    layout = [(k, names[v.dtype], list(v.shape)) for k, v in tensors.items()]
    write_safetensors(tmp_path / "x.safetensors", layout, tensors.__getitem__, {"format": "pt"})
    back = load_file(str(tmp_path / "x.safetensors"))
    assert set(back) == set(tensors)
    for k, v in tensors.items():
        assert back[k].dtype == v.dtype and torch.equal(back[k], v), k
    with safe_open(str(tmp_path / "x.safetensors"), "pt") as fh:
        assert fh.metadata() == {"format": "pt"}
    with pytest.raises(ExportError, match="produced shape"):
        write_safetensors(
            tmp_path / "y.safetensors", [("a", "F32", [2])], lambda _n: torch.zeros(3), {}
        )
