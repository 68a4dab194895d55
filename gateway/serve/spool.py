"""The meter's spool: every usage record is appended to a local file before it is queued, so
a replica killed with `kill -9` loses no record the meter was handed.

The write is one `os.write` on an append-only descriptor: the bytes are in the OS's page
cache when it returns, which a killed process cannot take back (a power cut can; that is what
the database's own durability is for). Two files take turns: when every record in the older
one is committed, it is emptied and becomes the one written to, so the spool holds about two
batches, not the day's traffic. Each file is locked while its replica lives; the next
`tunegate serve` on this machine recovers the files no live process holds, writes the records
the store lacks (request ids are unique, so none is counted twice) and says how many.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import uuid
from dataclasses import asdict
from pathlib import Path

from gateway.journal.serving import ServeStore, UsageRecord

try:
    import fcntl
except ImportError:  # Windows: no spool locking, so no recovery of another's spool
    fcntl = None  # type: ignore[assignment]


class Spool:
    def __init__(self, folder: Path):
        folder.mkdir(parents=True, exist_ok=True)
        name = f"spool-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self.paths = [folder / f"{name}.a", folder / f"{name}.b"]
        flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND
        self._fds = [os.open(p, flags, 0o600) for p in self.paths]
        if fcntl is not None:
            for fd in self._fds:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        self._current = 0
        self._older_last = 0  # sequence number of the newest record in the other file
        self.appended = 0

    def append(self, record: UsageRecord) -> int:
        """Append one record (the caller serializes); its sequence number."""
        line = json.dumps(asdict(record), separators=(",", ":")) + "\n"
        os.write(self._fds[self._current], line.encode())
        self.appended += 1
        return self.appended

    def committed(self, upto: int) -> None:
        """Records up to sequence `upto` are in the store (the caller serializes)."""
        if upto >= self._older_last:
            older = 1 - self._current
            os.ftruncate(self._fds[older], 0)
            self._current, self._older_last = older, self.appended

    def close(self, *, clean: bool) -> None:
        """Close; a clean close (everything committed) removes the files."""
        for fd in self._fds:
            os.close(fd)
        if clean:
            for path in self.paths:
                path.unlink(missing_ok=True)


def _orphaned(path: Path) -> bool:
    """No live process holds this spool file."""
    if fcntl is None:
        return False
    with path.open("rb") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return False
    return True


def _records(path: Path) -> list[UsageRecord]:
    found = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        with contextlib.suppress(ValueError, TypeError):  # a line torn by the kill
            found.append(UsageRecord(**json.loads(line)))
    return found


def recover(folder: Path, store: ServeStore) -> int:
    """Write the records of spools no live replica holds that the store lacks; how many."""
    if not folder.is_dir():
        return 0
    written = 0
    for path in sorted(folder.glob("spool-*.[ab]")):
        if not _orphaned(path):
            continue
        records = _records(path)
        if records:
            missing = store.missing_usage([r.request_id for r in records])
            new = [r for r in records if r.request_id in missing]
            if new:
                store.add_usage(new)
                written += len(new)
        path.unlink(missing_ok=True)
    if written:
        print(
            f"tunegate serve: recovered {written} usage record(s) a stopped gateway had not"
            " written (from its spool)",
            file=sys.stderr,
        )
    return written
