"""LoRA/DoRA adapters between PEFT and mlx-lm layouts, so every exporter takes either.

    PEFT  base_model.model.model.layers.{i}.{mod}.lora_A.weight  (r, in)   <->  mlx  model.layers.{i}.{mod}.lora_a  (in, r)
          base_model.model.model.layers.{i}.{mod}.lora_B.weight  (out, r)  <->       model.layers.{i}.{mod}.lora_b  (r, out)
          ...{mod}.lora_magnitude_vector                          (out)     <->       model.layers.{i}.{mod}.m       (out)
          lora_alpha / r  (rsLoRA: lora_alpha / sqrt(r))                    <->       scale

Both compute y = Wx + scale * B(A(x)) (DoRA then rescales each output row to its magnitude), so
a converted adapter gives the same logits (tests/pipeline/test_mlx.py). Files are read and written with
safetensors' numpy API: no torch or mlx needed.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

from gateway.errors import AdapterFormatError

_PEFT_KEY = re.compile(
    r"^base_model\.model\.model\.layers\.(\d+)\.(.+)\.(lora_A|lora_B)\.weight$|"
    r"^base_model\.model\.model\.layers\.(\d+)\.(.+)\.lora_magnitude_vector(?:\.weight)?$"
)
_MLX_KEY = re.compile(r"^model\.layers\.(\d+)\.(.+)\.(lora_a|lora_b|m)$")


def _n_layers(base: Path) -> int:
    cfg = json.loads((Path(base) / "config.json").read_text())
    return int(cfg.get("num_hidden_layers") or cfg["text_config"]["num_hidden_layers"])


def peft_to_mlx(peft_dir: Path, out_dir: Path, base: Path) -> Path:
    """Write an mlx-lm adapter folder (adapters.safetensors + adapter_config.json)."""
    from safetensors.numpy import load_file, save_file

    peft_dir, out_dir = Path(peft_dir), Path(out_dir)
    cfg = json.loads((peft_dir / "adapter_config.json").read_text())
    for key in ("rank_pattern", "alpha_pattern"):
        if cfg.get(key):
            raise AdapterFormatError(f"{key} (per-module rank/alpha) has no mlx-lm equivalent")
    if cfg.get("modules_to_save"):
        raise AdapterFormatError("modules_to_save (fully trained modules) has no mlx-lm equivalent")
    r, alpha = int(cfg["r"]), float(cfg["lora_alpha"])
    scale = alpha / math.sqrt(r) if cfg.get("use_rslora") else alpha / r
    weights = load_file(str(peft_dir / "adapter_model.safetensors"))
    out: dict[str, Any] = {}
    layers: set[int] = set()
    keys: set[str] = set()
    for name, value in weights.items():
        m = _PEFT_KEY.match(name)
        if not m:
            raise AdapterFormatError(f"adapter tensor {name!r} is not a per-layer LoRA weight")
        if m.group(1) is not None:
            layer, mod, part = int(m.group(1)), m.group(2), m.group(3)
            out[f"model.layers.{layer}.{mod}.{'lora_a' if part == 'lora_A' else 'lora_b'}"] = (
                value.T.copy()
            )
        else:
            layer, mod = int(m.group(4)), m.group(5)
            out[f"model.layers.{layer}.{mod}.m"] = value
        layers.add(layer)
        keys.add(mod)
    total = _n_layers(base)
    num_layers = total - min(layers)
    if sorted(layers) != list(range(total - num_layers, total)):
        raise AdapterFormatError(
            "the adapter covers layers that are not the last N of the model; mlx-lm cannot express that"
        )
    out_dir.mkdir(parents=True, exist_ok=True)
    save_file(out, str(out_dir / "adapters.safetensors"))
    (out_dir / "adapter_config.json").write_text(
        json.dumps(
            {
                "fine_tune_type": "dora" if cfg.get("use_dora") else "lora",
                "num_layers": num_layers,
                "lora_parameters": {
                    "rank": r,
                    "scale": scale,
                    "dropout": float(cfg.get("lora_dropout") or 0.0),
                    "keys": sorted(keys),
                },
            },
            indent=2,
        )
    )
    return out_dir


def mlx_to_peft(mlx_dir: Path, out_dir: Path, base: Path, weights_file: str | None = None) -> Path:
    """Write a PEFT adapter folder (adapter_config.json + adapter_model.safetensors)."""
    from safetensors.numpy import load_file, save_file

    mlx_dir, out_dir = Path(mlx_dir), Path(out_dir)
    cfg = json.loads((mlx_dir / "adapter_config.json").read_text())
    kind = cfg.get("fine_tune_type", "lora")
    if kind not in ("lora", "dora"):
        raise AdapterFormatError(f"an mlx-lm {kind} fine-tune is not an adapter")
    params = cfg["lora_parameters"]
    r, scale = int(params["rank"]), float(params["scale"])
    weights = load_file(str(mlx_dir / (weights_file or "adapters.safetensors")))
    out: dict[str, Any] = {}
    layers: set[int] = set()
    modules: set[str] = set()
    for name, value in weights.items():
        m = _MLX_KEY.match(name)
        if not m:
            raise AdapterFormatError(f"adapter tensor {name!r} is not a per-layer LoRA weight")
        layer, mod, part = int(m.group(1)), m.group(2), m.group(3)
        prefix = f"base_model.model.model.layers.{layer}.{mod}"
        if part == "m":
            out[f"{prefix}.lora_magnitude_vector"] = value
        else:
            suffix = "lora_A" if part == "lora_a" else "lora_B"
            out[f"{prefix}.{suffix}.weight"] = value.T.copy()
        layers.add(layer)
        modules.add(mod.rsplit(".", 1)[-1])
    total = _n_layers(base)
    out_dir.mkdir(parents=True, exist_ok=True)
    save_file(out, str(out_dir / "adapter_model.safetensors"))
    (out_dir / "adapter_config.json").write_text(
        json.dumps(
            {
                "peft_type": "LORA",
                "task_type": "CAUSAL_LM",
                "base_model_name_or_path": str(base),
                "r": r,
                "lora_alpha": scale * r,
                "lora_dropout": float(params.get("dropout") or 0.0),
                "target_modules": sorted(modules),
                "layers_to_transform": None
                if sorted(layers) == list(range(total))
                else sorted(layers),
                "use_dora": kind == "dora",
                "use_rslora": False,
                "bias": "none",
                "fan_in_fan_out": False,
                "init_lora_weights": True,
                "modules_to_save": None,
            },
            indent=2,
        )
    )
    return out_dir
