"""Metering off the request path: the handler hands a `UsageRecord` to a queue and returns;
one writer thread commits batches to the journal (a transaction per batch, not per request),
and closing drains the queue, so a clean shutdown loses no record.

Budgets need spend *now*, so the meter also keeps this month's spend per key in memory,
loaded from the journal at start and bumped as records are submitted.
"""

from __future__ import annotations

import calendar
import queue
import sys
import threading
import time
from collections.abc import Callable

from gateway.journal.serving import ServeStore, UsageRecord

BATCH = 500
WAIT_S = 0.05


def month_start(now: float | None = None) -> float:
    """The start of the current calendar month, UTC (budgets reset then)."""
    t = time.gmtime(now if now is not None else time.time())
    return float(calendar.timegm((t.tm_year, t.tm_mon, 1, 0, 0, 0)))


class Meter:
    def __init__(self, store: ServeStore):
        self.store = store
        self._queue: queue.SimpleQueue[UsageRecord | None] = queue.SimpleQueue()
        self._month = month_start()
        self._spend = store.spend_since(self._month)
        self._lock = threading.Lock()
        self.written = 0
        self.failures = 0
        self.last_batch_s = 0.0  # how long the last batch took to commit
        # told of every record as it is submitted (the Prometheus counters); never raise
        self.observers: list[Callable[[UsageRecord], None]] = []
        self._thread = threading.Thread(target=self._run, name="tunegate-meter", daemon=True)
        self._thread.start()

    def submit(self, record: UsageRecord) -> None:
        if record.key_id and record.cost_usd:
            with self._lock:
                if record.ts >= self._month:
                    self._spend[record.key_id] = (
                        self._spend.get(record.key_id, 0.0) + record.cost_usd
                    )
        for observe in self.observers:
            try:
                observe(record)
            except Exception as exc:  # a metric must never fail a request
                print(f"tunegate serve: metrics: {exc!r}", file=sys.stderr)
        self._queue.put(record)

    @property
    def pending(self) -> int:
        """Records submitted and not yet written (the buffer's depth)."""
        return self._queue.qsize()

    def spend(self, key_id: str) -> float:
        """This month's metered spend for a key."""
        with self._lock:
            current = month_start()
            if current != self._month:  # a new month: budgets start again
                self._month, self._spend = current, {}
            return self._spend.get(key_id, 0.0)

    def _run(self) -> None:
        stopping = False
        while not stopping:
            first = self._queue.get()
            if first is None:
                break
            batch = [first]
            deadline = time.monotonic() + WAIT_S
            while len(batch) < BATCH:
                try:
                    item = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
                except queue.Empty:
                    break
                if item is None:
                    stopping = True
                    break
                batch.append(item)
            self._write(batch)

    def _write(self, batch: list[UsageRecord]) -> None:
        for attempt in range(5):
            try:
                began = time.perf_counter()
                self.store.add_usage(batch)
                self.last_batch_s = time.perf_counter() - began
                self.written += len(batch)
                return
            except Exception as exc:  # a locked or full disk must not kill the writer
                if attempt == 4:
                    self.failures += len(batch)
                    print(
                        f"tunegate serve: could not write {len(batch)} usage records: {exc}",
                        file=sys.stderr,
                    )
                time.sleep(0.2 * (attempt + 1))

    def close(self) -> None:
        """Write everything submitted, then stop the writer."""
        self._queue.put(None)
        self._thread.join(timeout=30)
