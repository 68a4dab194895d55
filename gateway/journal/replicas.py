"""Which gateway replicas are alive and which engines each runs.

Local engines (llama.cpp, MLX) are started by the replica that serves the request, on its own
machine, so with several replicas one deployment may run in several engines. Each replica
writes a heartbeat row (host, pid, address, the deployments whose engine it runs) every
few seconds and removes it on a clean stop; `tunegate replicas` reads it. A replica killed
without a word drops out when it misses its beats, or at once when its process is known gone
on this machine.
"""

from __future__ import annotations

import json
import os
import socket
import time
from dataclasses import asdict, dataclass
from typing import Any

from gateway.journal.serving import ServeStore

HEARTBEAT_S = 5.0
ALIVE_S = 3 * HEARTBEAT_S  # a replica not seen for this long is taken as gone


@dataclass(frozen=True)
class Replica:
    id: str
    host: str
    pid: int
    address: str | None
    started_at: float
    seen_at: float
    engines: list[str]  # deployment ids whose engine this replica runs now

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def beat(store: ServeStore, replica: Replica) -> None:
    store._write(
        "INSERT INTO replicas (id, host, pid, address, started_at, seen_at, engines_json)"
        " VALUES (?,?,?,?,?,?,?) ON CONFLICT (id) DO UPDATE SET seen_at = excluded.seen_at,"
        " address = excluded.address, engines_json = excluded.engines_json",
        [(replica.id, replica.host, replica.pid, replica.address, replica.started_at,
          time.time(), json.dumps(replica.engines))],
    )  # fmt: skip


def forget(store: ServeStore, replica_id: str) -> None:
    store._write("DELETE FROM replicas WHERE id = ?", [(replica_id,)])


def _gone(host: str, pid: int) -> bool:
    """A replica on this machine whose process has exited (killed before it could say so)."""
    if host != socket.gethostname():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:  # alive, another user's
        return False
    return False


def alive(store: ServeStore, now: float | None = None) -> list[Replica]:
    """Replicas seen within ALIVE_S (on this machine: whose process still runs), oldest first."""
    since = (time.time() if now is None else now) - ALIVE_S
    rows = store._read("SELECT * FROM replicas WHERE seen_at >= ? ORDER BY started_at", (since,))
    return [
        Replica(r["id"], r["host"], r["pid"], r["address"], r["started_at"], r["seen_at"],
                json.loads(r["engines_json"]))
        for r in rows
        if not _gone(r["host"], r["pid"])
    ]  # fmt: skip
