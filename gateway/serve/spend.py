"""What an experiment's shadow copies and its judge have spent, per process: read from the
journal once per (experiment, arm), then counted here under a lock. The meter writes usage rows
later, so the journal alone lags; a cost known before a call is reserved (`reserve`), one known
after is added (`add`)."""

from __future__ import annotations

import threading

from gateway.journal.serving import ServeStore


class Spend:
    def __init__(self, store: ServeStore):
        self.store = store
        self._spent: dict[tuple[str, str], float] = {}
        self._lock = threading.Lock()

    def _load(self, exp_id: str, arm: str) -> float:
        key = (exp_id, arm)
        if key not in self._spent:
            rows = self.store.usage(experiment_id=exp_id)
            self._spent[key] = sum(r.cost_usd or 0.0 for r in rows if r.arm == arm)
        return self._spent[key]

    def spent(self, exp_id: str, arm: str) -> float:
        with self._lock:
            return self._load(exp_id, arm)

    def add(self, exp_id: str, arm: str, usd: float) -> None:
        with self._lock:
            self._spent[(exp_id, arm)] = self._load(exp_id, arm) + usd

    def reserve(self, exp_id: str, arm: str, usd: float, cap: float) -> bool:
        """Count `usd` and say yes, unless it would pass `cap`."""
        with self._lock:
            if self._load(exp_id, arm) + usd > cap:
                return False
            self._spent[(exp_id, arm)] += usd
            return True
