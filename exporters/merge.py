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
from typing import Any

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
    from safetensors import safe_open

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
            with safe_open(str(base / shard), "pt") as fh:

                def produce(name: str, fh: Any = fh) -> Any:
                    nonlocal merged, replaced
                    weight = fh.get_tensor(name)
                    if name in ad.modules:
                        merged += 1
                        return _merge_one(weight, ad, name, lora)
                    if name in ad.replaced:
                        new = lora.get_tensor(ad.replaced[name])
                        if new.shape != weight.shape:
                            raise ExportError(
                                f"{name}: adapter shape {tuple(new.shape)} vs base "
                                f"{tuple(weight.shape)}",
                                where=str(ad.path),
                            )
                        replaced += 1
                        return new.to(weight.dtype)
                    return weight

                layout = [
                    (n, fh.get_slice(n).get_dtype(), fh.get_slice(n).get_shape()) for n in names
                ]
                metadata = {"format": "pt", **(fh.metadata() or {})}
                write_safetensors(out / shard, layout, produce, metadata)
            done += (base / shard).stat().st_size
            if progress:
                progress(done, total)
    _copy_side_files(base, out)
    return MergeResult(out, list(shards), merged, replaced, ad.dora)


_ITEM_BYTES = {
    "BF16": 2,
    "F16": 2,
    "F32": 4,
    "F64": 8,
    "I64": 8,
    "I32": 4,
    "I16": 2,
    "I8": 1,
    "U8": 1,
    "BOOL": 1,
}


def write_safetensors(
    path: Path,
    layout: list[tuple[str, str, list[int]]],
    produce: Any,
    metadata: dict[str, str],
) -> None:
    """A safetensors file written tensor by tensor: the header comes from `layout` (name,
    dtype, shape), then each `produce(name)` is written and dropped, so memory holds one tensor
    instead of the whole shard."""
    import math

    import torch

    header: dict[str, Any] = {"__metadata__": metadata}
    offset = 0
    for name, dtype, shape in layout:
        size = _ITEM_BYTES[dtype] * math.prod(shape)
        header[name] = {
            "dtype": dtype,
            "shape": list(shape),
            "data_offsets": [offset, offset + size],
        }
        offset += size
    blob = json.dumps(header, separators=(",", ":")).encode()
    blob += b" " * (-len(blob) % 8)  # data starts 8-byte aligned, as safetensors writes it
    with path.open("wb") as fh:
        fh.write(len(blob).to_bytes(8, "little"))
        fh.write(blob)
        for name, dtype, shape in layout:
            tensor = produce(name).contiguous()
            if list(tensor.shape) != list(shape):
                raise ExportError(
                    f"{name}: produced shape {tuple(tensor.shape)}, expected {tuple(shape)}"
                )
            data = tensor.reshape(-1).view(torch.uint8).numpy()  # the tensor's bytes, no copy
            start, end = header[name]["data_offsets"]
            if data.nbytes != end - start:
                raise ExportError(
                    f"{name}: {dtype} data is {data.nbytes} bytes, expected {end - start}"
                )
            fh.write(data.data)


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
