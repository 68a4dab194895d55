"""Resumable downloads through a provider SDK's own authenticated client.

The bytes go to `NAME.partial` beside the target; a later call (same process or a new one after
a crash) continues from the partial size with a `Range` request. The SHA-256 is computed as the
bytes arrive (and over the partial prefix when resuming).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from gateway.errors import ProviderError
from gateway.util.retry import describe, idempotent

Opener = Callable[[dict[str, str]], Any]  # headers -> streaming httpx.Response (context manager)


def _hash_prefix(path: Path) -> Any:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest


def download(
    open_stream: Opener,
    dest: Path,
    *,
    progress: Callable[[int, int | None], None] | None = None,
) -> tuple[Path, str, int]:
    """Fetch into `dest`; returns (path, sha256, bytes). Resumes a `.partial` file if present."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    partial = dest.with_name(dest.name + ".partial")
    state: dict[str, Any] = {"total": None}

    def attempt() -> None:
        have = partial.stat().st_size if partial.exists() else 0
        digest = _hash_prefix(partial) if have else hashlib.sha256()
        headers = {"Range": f"bytes={have}-"} if have else {}
        with contextlib.closing(open_stream(headers)) as response:
            if have and response.status_code == 200:  # server ignored Range: start over
                have, digest = 0, hashlib.sha256()
                partial.unlink(missing_ok=True)
            elif response.status_code not in (200, 206):
                raise ProviderError(f"download answered HTTP {response.status_code}")
            length = response.headers.get("content-length")
            if length is not None:
                state["total"] = have + int(length)
            with partial.open("ab") as fh:
                got = have
                for chunk in response.iter_bytes():  # as it arrives, so a cut keeps a prefix
                    fh.write(chunk)
                    digest.update(chunk)
                    got += len(chunk)
                    if progress:
                        progress(got, state["total"])
        if state["total"] is not None and partial.stat().st_size < state["total"]:
            raise ConnectionError(f"download ended at {partial.stat().st_size:,} bytes")
        state["sha256"] = digest.hexdigest()

    try:
        idempotent(attempt, what="download")
    except ProviderError:
        raise
    except Exception as exc:
        raise ProviderError(
            f"download failed: {describe(exc)} ({partial.stat().st_size if partial.exists() else 0:,} bytes kept)",
            fix="run the same command again: it resumes where it stopped",
        ) from None
    size = partial.stat().st_size
    os.replace(partial, dest)
    return dest, state["sha256"], size
