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
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from gateway.errors import DeployError

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


@contextmanager
def running(argv: tuple[str, ...], log: Path, timeout_s: float = 180.0) -> Iterator[str]:
    """A throwaway server (the canary's, at deploy time) on a free loopback port; yields …/v1."""
    from exporters.deploy.engines import free_port

    port = str(free_port())
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [a.replace("{port}", port) for a in argv],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    url = f"http://127.0.0.1:{port}/v1"
    try:
        _wait(proc, url, log, timeout_s)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _wait(proc: subprocess.Popen[bytes], url: str, log: Path, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            break
        try:
            if httpx.get(url + "/models", timeout=2.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    tail = log.read_text(errors="replace")[-600:].strip() if log.exists() else ""
    raise DeployError(
        f"llama-server did not start ({'exit code ' + str(proc.poll()) if proc.poll() is not None else 'no answer in time'})"
        + (f": {tail}" if tail else ""),
        where=str(log),
    )
