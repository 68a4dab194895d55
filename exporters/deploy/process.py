"""An engine process outside any gateway: a free loopback port, and a command run until a
block ends (the canary at deploy time, `tunegate doctor --canary`, the benchmarks). The
gateway's supervised engines (`exporters.deploy.engines`) take their ports from here too."""

from __future__ import annotations

import os
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from gateway.errors import ServeError


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def started(
    argv: tuple[str, ...], log: Path, timeout_s: float = 180.0, env: dict[str, str] | None = None
) -> Iterator[str]:
    """An engine command (with "{port}") run here until the block ends, outside any gateway: a
    canary at deploy time or from `tunegate doctor --canary`; yields its …/v1."""
    port = str(free_port())
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [a.replace("{port}", port) for a in argv],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**os.environ, **(env or {})},
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
    raise ServeError(
        f"the engine did not start ({'exit code ' + str(proc.poll()) if proc.poll() is not None else 'no answer in time'})"
        + (f": {tail}" if tail else ""),
        where=str(log),
    )
