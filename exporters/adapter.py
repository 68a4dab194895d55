"""A PEFT LoRA adapter as data: which base weights it changes, by how much, and what it refuses.

Every exporter reads adapters through this one module so the scale rules (rsLoRA α/√r,
per-module rank and alpha patterns) cannot drift between the merge and the GGUF adapter path.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gateway.errors import ExportError

_PREFIX = "base_model.model."
_LORA_A, _LORA_B, _MAGNITUDE = ".lora_A.weight", ".lora_B.weight", ".lora_magnitude_vector"
# adapter_config keys whose non-default value changes the math in ways the exporters do not model
_UNSUPPORTED = {
    "fan_in_fan_out": "fan_in_fan_out (Conv1D) layers",
    "lora_bias": "lora_bias",
    "layer_replication": "layer_replication",
    "target_parameters": "target_parameters (LoRA on raw parameters)",
    "trainable_token_indices": "trainable_token_indices",
    "alora_invocation_tokens": "activated LoRA (aLoRA)",
    "use_qalora": "QA-LoRA",
    "arrow_config": "Arrow routing",
}


@dataclass
class LoraModule:
    """One adapted linear layer: base weight name, scale, and its tensors' names in the file."""

    name: str  # module path in the base model, e.g. model.layers.0.self_attn.q_proj
    rank: int
    alpha: float
    scale: float
    a_key: str
    b_key: str
    magnitude_key: str | None = None

    @property
    def weight(self) -> str:
        return f"{self.name}.weight"


@dataclass
class Adapter:
    path: Path
    config: dict[str, Any]
    modules: dict[str, LoraModule]  # by base weight name
    replaced: dict[str, str] = field(default_factory=dict)  # base tensor name -> key in file

    @property
    def weights_file(self) -> Path:
        return self.path / "adapter_model.safetensors"

    @property
    def dora(self) -> bool:
        return bool(self.config.get("use_dora"))

    @property
    def rslora(self) -> bool:
        return bool(self.config.get("use_rslora"))

    @property
    def patterned(self) -> bool:
        return bool(self.config.get("rank_pattern") or self.config.get("alpha_pattern"))

    @property
    def base_name(self) -> str | None:
        return self.config.get("base_model_name_or_path")


def _pattern(patterns: dict[str, Any], module: str) -> Any:
    """PEFT's rule: the first pattern that matches a dotted suffix of the module name."""
    for key, value in patterns.items():
        if re.match(rf"(.*\.)?({key})$", module):
            return value
    return None


def scale_of(config: dict[str, Any], module: str) -> tuple[int, float, float]:
    """(rank, alpha, scale) of `module` exactly as PEFT computes them."""
    rank = _pattern(config.get("rank_pattern") or {}, module) or config.get("r", 8)
    alpha = _pattern(config.get("alpha_pattern") or {}, module) or config.get("lora_alpha", 8)
    root = math.sqrt(rank) if config.get("use_rslora") else rank
    return int(rank), float(alpha), float(alpha) / root


def adapter_config(path: Path | str) -> dict[str, Any]:
    """adapter_config.json of a PEFT adapter folder (no tensors read, no ML framework)."""
    path = Path(path)
    cfg_file = path / "adapter_config.json"
    if not cfg_file.is_file():
        raise ExportError(
            "not a PEFT adapter directory (no adapter_config.json)",
            where=str(path),
            fix="pass the folder `tunegate fetch ID` wrote, or a job id",
        )
    try:
        config = json.loads(cfg_file.read_text())
    except ValueError as exc:
        raise ExportError(f"adapter_config.json is not JSON: {exc}", where=str(cfg_file)) from None
    if not isinstance(config, dict):
        raise ExportError("adapter_config.json is not a JSON object", where=str(cfg_file))
    return config


def read_adapter(path: Path | str) -> Adapter:
    """Parse adapter_config.json and the tensor names; refuse what would merge wrongly."""
    from safetensors import safe_open

    path = Path(path)
    cfg_file = path / "adapter_config.json"
    config = adapter_config(path)
    if config.get("peft_type", "LORA") != "LORA":
        raise ExportError(
            f"peft_type {config.get('peft_type')} is not LoRA; only LoRA/DoRA adapters export",
            where=str(cfg_file),
        )
    for key, what in _UNSUPPORTED.items():
        if config.get(key) not in (None, False, {}, [], ""):
            raise ExportError(f"{what} is not supported by the exporters", where=str(cfg_file))
    weights = path / "adapter_model.safetensors"
    if not weights.is_file():
        raise ExportError(
            "no adapter_model.safetensors (a .bin adapter must be re-saved with PEFT first)",
            where=str(path),
        )
    with safe_open(str(weights), "pt") as fh:
        keys = list(fh.keys())
    adapter = Adapter(path, config, {})
    for key in keys:
        if not key.startswith(_PREFIX):
            raise ExportError(f"unexpected tensor {key!r}", where=str(weights))
        if "lora_embedding_" in key:
            raise ExportError(
                "LoRA on embeddings is not supported by the exporters",
                where=str(weights),
                fix="train without embedding targets, or use PEFT merge_and_unload yourself",
            )
        if key.endswith(_LORA_A):
            name = key[len(_PREFIX) : -len(_LORA_A)]
            rank, alpha, scale = scale_of(config, name)
            adapter.modules[f"{name}.weight"] = LoraModule(
                name,
                rank,
                alpha,
                scale,
                key,
                key[: -len(_LORA_A)] + _LORA_B,
                key[: -len(_LORA_A)] + _MAGNITUDE if adapter.dora else None,
            )
        elif key.endswith((_LORA_B, _MAGNITUDE)):
            continue
        elif ".lora_" in key:
            raise ExportError(f"unsupported adapter tensor {key!r}", where=str(weights))
        else:  # modules_to_save / trained biases: whole tensors that replace the base's
            adapter.replaced[key[len(_PREFIX) :]] = key
    known = set(keys)
    for mod in adapter.modules.values():
        missing = [k for k in (mod.b_key, mod.magnitude_key) if k and k not in known]
        if missing:
            raise ExportError(f"{missing[0]} is missing", where=str(weights))
    if not adapter.modules and not adapter.replaced:
        raise ExportError("the adapter holds no LoRA tensors", where=str(weights))
    return adapter
