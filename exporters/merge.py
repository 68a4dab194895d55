"""Fold a LoRA/DoRA adapter into its 16-bit base, one safetensors shard at a time.

PEFT's `merge_and_unload` loads the whole model first; this reads each shard, merges the targeted
weights in fp32 and writes the shard back under the same name in the base's dtype, so peak memory
is about one shard plus one fp32 tensor. A QLoRA adapter is merged into the 16-bit base (the one
it was quantized from), never into 4-bit weights: that merge is lossy and is what makes "merged"
models worse than the adapter.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from exporters.adapter import Adapter, read_adapter
from gateway.errors import ExportError

INDEX = "model.safetensors.index.json"
_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".gguf", ".msgpack", ".h5", ".ckpt")
Progress = Callable[[int, int], None]  # (bytes done, bytes total)


@dataclass
class MergeResult:
    path: Path
    shards: list[str]
    merged: int  # weights changed by LoRA
    replaced: int  # whole tensors taken from the adapter (modules_to_save)
    dora: bool


def base_shards(base: Path) -> dict[str, list[str]]:
    """Shard file → tensor names, from the index or the single model.safetensors."""
    index = base / INDEX
    if index.is_file():
        weight_map: dict[str, str] = json.loads(index.read_text())["weight_map"]
        shards: dict[str, list[str]] = {}
        for name, shard in weight_map.items():
            shards.setdefault(shard, []).append(name)
        return shards
    single = base / "model.safetensors"
    if single.is_file():
        from safetensors import safe_open

        with safe_open(str(single), "pt") as fh:
            return {single.name: list(fh.keys())}
    raise ExportError(
        "the base model has no safetensors weights",
        where=str(base),
        fix="re-save the base with save_pretrained(safe_serialization=True)",
    )


def check_base(base: Path) -> None:
    """Refuse a quantized base: merging into 4-bit weights silently degrades the model."""
    try:
        config = json.loads((base / "config.json").read_text())
    except (OSError, ValueError) as exc:
        raise ExportError(f"cannot read config.json: {exc}", where=str(base)) from None
    quant = config.get("quantization_config")
    if quant:
        method = quant.get("quant_method", "quantized")
        raise ExportError(
            f"the base is {method}-quantized; a LoRA is merged into the 16-bit base, "
            "never into quantized weights",
            where=str(base),
            fix="pass --base with the original 16-bit model the adapter (or QLoRA) was trained from",
        )


def merge(
    adapter: Path | Adapter, base: Path, out: Path, *, progress: Progress | None = None
) -> MergeResult:
    """Write base + adapter to `out` (same shard names and index, tokenizer files copied as is)."""
    import torch
    from safetensors import safe_open
    from safetensors.torch import save_file

    ad = adapter if isinstance(adapter, Adapter) else read_adapter(adapter)
    check_base(base)
    shards = base_shards(base)
    present = {name for names in shards.values() for name in names}
    missing = sorted(set(ad.modules) - present) + sorted(set(ad.replaced) - present)
    if missing:
        raise ExportError(
            f"the adapter changes {missing[0]}, which this base does not have "
            f"({len(missing)} such tensors)",
            where=str(ad.path),
            fix="pass --base with the model the adapter was trained on",
        )
    out.mkdir(parents=True, exist_ok=True)
    total = sum((base / s).stat().st_size for s in shards)
    done = merged = replaced = 0
    with safe_open(str(ad.weights_file), "pt") as lora:
        for shard, names in shards.items():
            tensors: dict[str, torch.Tensor] = {}
            with safe_open(str(base / shard), "pt") as fh:
                metadata = fh.metadata() or {}
                for name in names:
                    weight = fh.get_tensor(name)
                    if name in ad.modules:
                        weight = _merge_one(weight, ad, name, lora)
                        merged += 1
                    elif name in ad.replaced:
                        new = lora.get_tensor(ad.replaced[name])
                        if new.shape != weight.shape:
                            raise ExportError(
                                f"{name}: adapter shape {tuple(new.shape)} vs base "
                                f"{tuple(weight.shape)}",
                                where=str(ad.path),
                            )
                        weight = new.to(weight.dtype)
                        replaced += 1
                    tensors[name] = weight.contiguous()
            save_file(tensors, str(out / shard), metadata={"format": "pt", **metadata})
            del tensors
            done += (base / shard).stat().st_size
            if progress:
                progress(done, total)
    _copy_side_files(base, out)
    return MergeResult(out, list(shards), merged, replaced, ad.dora)


def _merge_one(weight: object, ad: Adapter, name: str, lora: object) -> object:
    """W + s·B@A in fp32 (DoRA: rescaled row-wise to the learned magnitude), in W's dtype."""
    import torch

    assert isinstance(weight, torch.Tensor)
    mod = ad.modules[name]
    a = lora.get_tensor(mod.a_key).to(torch.float32)  # type: ignore[attr-defined]
    b = lora.get_tensor(mod.b_key).to(torch.float32)  # type: ignore[attr-defined]
    if a.shape[0] != mod.rank or b.shape[1] != mod.rank:
        raise ExportError(
            f"{mod.name}: tensors have rank {a.shape[0]} but the config says {mod.rank}",
            where=str(ad.path),
        )
    if (b.shape[0], a.shape[1]) != tuple(weight.shape):
        raise ExportError(
            f"{mod.name}: adapter makes {(b.shape[0], a.shape[1])}, base weight is "
            f"{tuple(weight.shape)}",
            where=str(ad.path),
            fix="pass --base with the model the adapter was trained on",
        )
    w = weight.to(torch.float32) + mod.scale * (b @ a)
    if mod.magnitude_key:
        magnitude = lora.get_tensor(mod.magnitude_key).to(torch.float32)  # type: ignore[attr-defined]
        w *= (magnitude / torch.linalg.norm(w, dim=1)).unsqueeze(1)
    return w.to(weight.dtype)


def _copy_side_files(base: Path, out: Path) -> None:
    """config, generation config, index, every tokenizer file (tokenizer.model too) and the
    chat template, byte for byte: re-saving a tokenizer drops files and changes templates."""
    for src in sorted(base.iterdir()):
        if src.name.startswith(".") or not src.is_file() or src.name.endswith(_WEIGHT_SUFFIXES):
            continue
        shutil.copy2(src, out / src.name)
