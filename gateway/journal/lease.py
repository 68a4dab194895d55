"""A launching process's lease on its job, so no other process reconciles a live launch.

Between `record_intent` and the create, a launch can sit at the confirmation prompt or in a
long upload. Another terminal's start-up reconciliation must not take that silence for a
crash ("interrupted before create; nothing was created"): a user who relaunched on that note
would pay twice. The launcher holds an OS lock on `leases/<job id>.lock` beside the journal
for as long as it runs; the OS drops the lock when the process dies, however it dies, so a
held lock means a live launcher. Where `fcntl` is missing (Windows) the pid written in the
file is checked for liveness instead.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path

from gateway.journal.db import local_dir

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None  # type: ignore[assignment]

_STARTED = time.time()


def _path(journal_path: Path | str, job_id: str) -> Path:
    return local_dir(journal_path) / "leases" / f"{job_id}.lock"


@contextlib.contextmanager
def hold(journal_path: Path | str, job_id: str) -> Iterator[None]:
    """Hold the lease on `job_id` for the duration of the block."""
    path = _path(journal_path, job_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    fh = path.open("a+")
    try:
        if fcntl is not None:
            fcntl.flock(fh, fcntl.LOCK_EX)
        fh.seek(0)
        fh.truncate()
        fh.write(json.dumps({"pid": os.getpid(), "started": _STARTED}))
        fh.flush()
        yield
    finally:
        with contextlib.suppress(OSError):
            path.unlink()
        fh.close()  # closing drops the lock


def held(journal_path: Path | str, job_id: str) -> bool:
    """Whether a live process holds the lease on `job_id` now."""
    path = _path(journal_path, job_id)
    try:
        fh = path.open("r")
    except FileNotFoundError:
        return False
    with fh:
        if fcntl is not None:
            try:
                fcntl.flock(fh, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except OSError:
                return True
            fcntl.flock(fh, fcntl.LOCK_UN)
            return False
        return _owner_alive(fh.read())


def _owner_alive(text: str) -> bool:
    try:
        owner = json.loads(text)
        os.kill(int(owner["pid"]), 0)
    except (ValueError, KeyError, TypeError, OSError):
        return False
    return True
