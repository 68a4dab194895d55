"""What a gateway replica does in the background besides metering: it folds old request rows
into daily totals (`gateway.journal.rollup`) at start and then hourly, writes its heartbeat
(`gateway.journal.replicas`: which engines it runs), and applies `ab start --auto` decisions.
Every replica runs them; on a shared store they take turns, and the later ones find nothing
left to fold or decide."""

from __future__ import annotations

import os
import socket
import sys
import time
import traceback
import uuid
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import anyio

from gateway.journal.db import local_dir
from gateway.journal.replicas import HEARTBEAT_S, Replica, beat, forget
from gateway.journal.rollup import roll_up
from gateway.journal.serving import ServeStore

ROLLUP_EVERY_S = 3600.0
FLEETS_EVERY_S = 600.0  # how often the oldest replica asks rented fleets which replicas live


def spool_dir(store_path: Path | str) -> Path:
    """Where this machine's replicas keep their usage spools (beside the journal, or under
    TUNEGATE_HOME for a PostgreSQL store)."""
    return local_dir(store_path) / "serve" / "spool"


def retention_days() -> float:
    from gateway.catalog.config import load_config

    return load_config().serve.usage_retention_days


async def roll_up_forever(store: ServeStore) -> None:
    while True:
        try:
            folded = await anyio.to_thread.run_sync(roll_up, store, retention_days())
            if folded:
                print(f"tunegate serve: folded {folded} usage rows past the retention into"
                      " daily totals", file=sys.stderr)  # fmt: skip
        except Exception:  # retried next hour, never the server's end
            traceback.print_exc(file=sys.stderr)
        await anyio.sleep(ROLLUP_EVERY_S)


class Upkeep:
    """The background tasks of one replica, and its identity in the store."""

    def __init__(
        self,
        store: ServeStore,
        engines: Callable[[], list[dict[str, Any]]],
        refresh: Callable[[], None],
    ):
        self.store, self._engines, self._refresh = store, engines, refresh
        self.id = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.address: str | None = None  # host:port, set by whoever binds the server
        self.started_at = time.time()

    def tasks(self) -> list[Coroutine[Any, Any, None]]:
        return [roll_up_forever(self.store), self._beat_forever(), self._decide_forever(),
                self._fleets_forever()]  # fmt: skip

    async def _fleets_forever(self) -> None:
        """Keep the running cost of fleets billed by the hour (rented ones) accrued in the
        journal while the gateway runs, not only when someone lists them. One replica does
        it (the oldest alive), so hours are never added twice."""
        from gateway.facade.deploy import deployments, live_status
        from gateway.journal.replicas import alive

        while True:
            await anyio.sleep(FLEETS_EVERY_S)
            try:
                found = await anyio.to_thread.run_sync(alive, self.store)
                if found and found[0].id == self.id:
                    for dep in await anyio.to_thread.run_sync(deployments):
                        await anyio.to_thread.run_sync(live_status, dep)
            except Exception:  # asked again next time, never the server's end
                traceback.print_exc(file=sys.stderr)

    def replica(self) -> Replica:
        running = [str(e["deployment"]) for e in self._engines() if e.get("url")]
        return Replica(self.id, socket.gethostname(), os.getpid(), self.address, self.started_at,
                       time.time(), running)  # fmt: skip

    async def _beat_forever(self) -> None:
        while True:
            try:
                await anyio.to_thread.run_sync(beat, self.store, self.replica())
            except Exception:  # the store is away: the next beat tries again
                traceback.print_exc(file=sys.stderr)
            await anyio.sleep(HEARTBEAT_S)

    async def _decide_forever(self) -> None:
        """`tunegate ab start --auto`: promote or roll back when the numbers are clear."""
        from gateway.facade.ab import auto_check

        every = float(os.environ.get("TUNEGATE_AB_CHECK_S", "30"))
        while True:
            await anyio.sleep(every)
            try:
                decided = await anyio.to_thread.run_sync(auto_check, self.store.path)
                if decided:  # this replica follows its own decision now, not at the refresh
                    await anyio.to_thread.run_sync(self._refresh)
                for exp in decided:
                    print(f"tunegate serve: {exp.alias}: experiment {exp.id} {exp.state} "
                          f"({(exp.decision or {}).get('why')})", file=sys.stderr)  # fmt: skip
            except Exception:  # a failed check is retried next time, never the server's end
                traceback.print_exc(file=sys.stderr)

    def close(self) -> None:
        """A clean stop: the replica leaves the store's list at once."""
        try:
            forget(self.store, self.id)
        except Exception as exc:  # it ages out of the list anyway
            print(f"tunegate serve: could not remove the heartbeat: {exc}", file=sys.stderr)
