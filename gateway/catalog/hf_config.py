"""Models outside the catalog: read their config.json from a local path or the HF cache.

Nothing is downloaded here; planning must work offline and import no ML framework.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from gateway.catalog.schema import ModelInfo

_TEMPLATE_BY_TYPE = {
    "llama": "llama3",
    "qwen2": "chatml",
    "qwen3": "chatml",
    "mistral": "mistral",
    "gemma3": "gemma",
    "gemma3_text": "gemma",
    "gemma2": "gemma",
    "gpt_oss": "harmony",
}


def hf_cache_dir() -> Path:
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"])
    home = Path(os.environ.get("HF_HOME", Path.home() / ".cache" / "huggingface"))
    return home / "hub"


def _find_config(name: str) -> Path | None:
    local = Path(name).expanduser()
    if (local / "config.json").is_file():
        return local / "config.json"
    if "/" not in name:
        return None
    repo = hf_cache_dir() / f"models--{name.replace('/', '--')}"
    snapshots = sorted((repo / "snapshots").glob("*/config.json"), key=lambda p: p.stat().st_mtime)
    return snapshots[-1] if snapshots else None


def model_from_config(model_id: str, config: dict[str, Any], source: str) -> ModelInfo:
    """Build a ModelInfo from a transformers config.json (text config for multimodal models)."""
    text = config.get("text_config") or config
    heads = int(text.get("num_attention_heads", 0))
    return ModelInfo(
        id=model_id,
        architecture=(config.get("architectures") or [None])[0],
        layers=int(text.get("num_hidden_layers", 0)),
        hidden=int(text.get("hidden_size", 0)),
        intermediate=int(text.get("intermediate_size", 0)),
        heads=heads,
        kv_heads=int(text.get("num_key_value_heads") or heads),
        head_dim=text.get("head_dim"),
        vocab=int(text.get("vocab_size", 0)),
        context=int(text.get("max_position_embeddings", 0)),
        tie_embeddings=bool(
            config.get("tie_word_embeddings", text.get("tie_word_embeddings", False))
        ),
        experts=text.get("num_local_experts") or text.get("num_experts"),
        experts_per_token=text.get("num_experts_per_tok"),
        chat_template=_TEMPLATE_BY_TYPE.get(str(text.get("model_type", config.get("model_type")))),
        source=source,
    )


def model_from_hf_cache(name: str) -> ModelInfo | None:
    path = _find_config(name)
    if path is None:
        return None
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    info = model_from_config(name, config, source=f"config.json at {path}")
    return info if info.layers and info.hidden else None
