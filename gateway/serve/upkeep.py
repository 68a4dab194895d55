"""What a gateway replica does in the background besides metering: it folds old request rows
into daily totals (`gateway.journal.rollup`), at start and then hourly. Every replica runs
it; on a shared store they take turns and the later ones find nothing left to fold."""

from __future__ import annotations

import sys
import traceback
from pathlib import Path

import anyio

from gateway.journal.db import local_dir
from gateway.journal.rollup import roll_up
from gateway.journal.serving import ServeStore

ROLLUP_EVERY_S = 3600.0


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
