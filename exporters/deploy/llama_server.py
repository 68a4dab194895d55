"""llama.cpp's own server (`llama-server`): the engine that holds one base GGUF and several LoRA
adapters in one process (llama-cpp-python, the single-model engine, loads one adapter).

Found at $TUNEGATE_LLAMA_SERVER, next to this Python (where `make test` builds it from the
llama.cpp sources of the llama-cpp-python sdist), or on PATH. Every request names every
adapter's scale (1 for its own, 0 for the rest): a request without the full list gets neither
the base nor any adapter (llama.cpp#28674; ../shared/reference/serving-scale.md §2).
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path
from typing import Any

from exporters.deploy.process import started as running  # a throwaway server (the canary's)
from gateway.errors import DeployError

__all__ = ["binary", "command", "require_binary", "running", "scales"]

SLOTS = 4  # requests decoded together
SLOT_CONTEXT = 2048  # tokens per request, as the single-model engine allows
BUILD_FIX = "`make .venv/bin/llama-server` builds it (~4 min), or set TUNEGATE_LLAMA_SERVER"


def binary() -> Path | None:
    """The llama-server executable, or None."""
    named = os.environ.get("TUNEGATE_LLAMA_SERVER")
    if named:
        return Path(named) if Path(named).is_file() else None
    beside = Path(sys.executable).parent / "llama-server"
    if beside.is_file():
        return beside
    found = shutil.which("llama-server")
    return Path(found) if found else None


def require_binary() -> Path:
    found = binary()
    if found is None:
        raise DeployError("llama.cpp's server (llama-server) is not installed", fix=BUILD_FIX)
    return found


def command(base: Path, loras: list[str], port: str = "{port}") -> tuple[str, ...]:
    """argv of a server holding `base` and `loras` (in this order: a scale list's ids)."""
    argv = [str(require_binary()), "--model", str(base), "--host", "127.0.0.1", "--port", port]
    argv += ["--ctx-size", str(SLOT_CONTEXT * SLOTS), "--parallel", str(SLOTS)]
    if loras:
        argv += ["--lora", ",".join(loras)]
    return tuple(argv)


def scales(loras: list[str], mine: str | None) -> dict[str, Any]:
    """The request fields that select `mine` (None: the base) among `loras`.

    Prompt caching is off: the server reuses a slot's cached prompt (its KV, computed under
    whatever adapters that request had) for the next similar prompt, and on this project's
    tiny test model an adapter's answer then moved 0.034 nats from the same adapter's answer in
    an engine of its own, which the canary caught. The price is re-reading shared prefixes
    (a long system prompt) on every request of a shared engine."""
    picks = [{"id": i, "scale": 1.0 if p == mine else 0.0} for i, p in enumerate(loras)]
    return {"lora": picks, "cache_prompt": False}
