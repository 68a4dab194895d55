"""Metering off the request path: the handler hands a `UsageRecord` to a queue and returns;
one writer thread commits batches to the journal (a transaction per batch, not per request),
and closing drains the queue, so a clean shutdown loses no record.

Budgets need spend *now*, so the meter also keeps this month's spend per key in memory:
the store's, refreshed as batches go in (so replicas on one PostgreSQL share it), plus this
replica's records not yet written. Records go to a local spool first (`spool.py`), so a
`kill -9` loses none.
"""

from __future__ import annotations

import calendar
import queue
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

from gateway.journal.serving import ServeStore, UsageRecord
from gateway.serve.spool import Spool, recover

BATCH = 500
WAIT_S = 0.05
REFRESH_S = 0.25  # how often an idle replica reads the spend the others wrote
MAX_PENDING = 50_000  # records held while the store is away; past it the gateway answers 503


def month_start(now: float | None = None) -> float:
    """The start of the current calendar month, UTC (budgets reset then)."""
    t = time.gmtime(now if now is not None else time.time())
    return float(calendar.timegm((t.tm_year, t.tm_mon, 1, 0, 0, 0)))


class Meter:
    """The usage writer and the budget's view of spend.

    Spend for a budget is the store's (every replica's written records, refreshed after each
    batch and every REFRESH_S when idle) plus this replica's records not written yet. Another
    replica's requests are seen once it has written them and this one has refreshed: a key
    can overspend by at most the requests in flight on all replicas plus about WAIT_S +
    REFRESH_S of the others' traffic (docs/serve.md#replicas).
    """

    def __init__(self, store: ServeStore, spool_dir: Path | None = None):
        self.store = store
        self._queue: queue.SimpleQueue[tuple[int, UsageRecord] | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self.recovered = recover(spool_dir, store) if spool_dir else 0
        self._spool = Spool(spool_dir) if spool_dir else None
        self._month = month_start()
        self._mark = store.last_usage_id()  # rows up to here are in _shared
        self._shared = store.spend_since(self._month, self._mark)
        self._unwritten: dict[str, float] = {}  # this replica's, submitted and not yet written
        self._seq = 0  # records submitted
        self._committed = 0  # records written, by sequence number
        self._closing = False
        self.written = 0
        self.failures = 0
        self.last_batch_s = 0.0  # how long the last batch took to commit
        # told of every record as it is submitted (the Prometheus counters); never raise
        self.observers: list[Callable[[UsageRecord], None]] = []
        self._thread = threading.Thread(target=self._run, name="tunegate-meter", daemon=True)
        self._thread.start()

    def submit(self, record: UsageRecord) -> None:
        for observe in self.observers:
            try:
                observe(record)
            except Exception as exc:  # a metric must never fail a request
                print(f"tunegate serve: metrics: {exc!r}", file=sys.stderr)
        with self._lock:
            if record.key_id and record.cost_usd and record.ts >= self._month:
                key = record.key_id
                self._unwritten[key] = self._unwritten.get(key, 0.0) + record.cost_usd
            self._seq = self._spool.append(record) if self._spool else self._seq + 1
            self._queue.put((self._seq, record))

    @property
    def full(self) -> bool:
        """The buffer is at its bound (the store has refused writes for a while)."""
        return self._queue.qsize() >= MAX_PENDING

    @property
    def pending(self) -> int:
        """Records submitted and not yet written (the buffer's depth)."""
        return self._queue.qsize()

    def spend(self, key_id: str) -> float:
        """This month's metered spend for a key, on every replica of the store."""
        with self._lock:
            return self._shared.get(key_id, 0.0) + self._unwritten.get(key_id, 0.0)

    def _run(self) -> None:
        stopping = False
        while not stopping:
            try:
                first = self._queue.get(timeout=REFRESH_S)
            except queue.Empty:
                self._refresh([], 0)
                continue
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
            records = [r for _, r in batch]
            if self._write(records):
                self._refresh(records, batch[-1][0])
            else:  # stopping with the store away: these stay in the spool for the next start
                break

    def _refresh(self, written: list[UsageRecord], upto: int) -> None:
        """Read what every replica wrote since the last look; forget our own `written`."""
        try:
            current = month_start()
            if current != self._month:  # a new month: budgets start again
                mark = self.store.last_usage_id()
                shared, increments = self.store.spend_since(current, mark), {}
            else:
                mark = self.store.last_usage_id()
                shared, increments = None, self.store.spend_after(self._month, self._mark, mark)
        except Exception as exc:  # the store is away: budgets use what was last seen
            print(f"tunegate serve: could not read shared spend: {exc}", file=sys.stderr)
            return
        with self._lock:
            if shared is not None:
                self._month, self._shared, self._unwritten = current, shared, {}
            for rec in written:
                if rec.key_id and rec.cost_usd and rec.key_id in self._unwritten:
                    self._unwritten[rec.key_id] -= rec.cost_usd
            for key, usd in increments.items():
                self._shared[key] = self._shared.get(key, 0.0) + usd
            self._mark = mark
            if upto:
                self._committed = upto
                if self._spool:
                    self._spool.committed(upto)

    def _write(self, batch: list[UsageRecord]) -> bool:
        """Write one batch, retrying while the store is away (a batch is never dropped: the
        buffer's bound turns a long outage into 503s, not lost records)."""
        attempt = 0
        while True:
            try:
                began = time.perf_counter()
                self.store.add_usage(batch)
                self.last_batch_s = time.perf_counter() - began
                self.written += len(batch)
                return True
            except Exception as exc:  # a locked or full disk, a store restarting
                attempt += 1
                self.failures += 1
                if attempt == 1 or attempt % 20 == 0:
                    print(f"tunegate serve: could not write {len(batch)} usage records "
                          f"(attempt {attempt}; kept and retried): {exc}", file=sys.stderr)  # fmt: skip
                if self._closing and attempt >= 5:
                    return False  # stopping with the store away: the spool keeps them
                time.sleep(min(5.0, 0.2 * attempt))

    def close(self) -> None:
        """Write everything submitted, then stop the writer (and remove the spool when all
        of it is in the store; otherwise the next start writes it)."""
        self._closing = True
        self._queue.put(None)
        self._thread.join(timeout=60)
        if self._spool:
            done = not self._thread.is_alive() and self._unwritten_count() == 0
            self._spool.close(clean=done)

    def _unwritten_count(self) -> int:
        with self._lock:
            return self._seq - self._committed
