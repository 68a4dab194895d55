"""Usage retention: request rows older than the retention become daily totals.

One row per request is what budgets, A/B verdicts and percentiles need for recent traffic;
kept forever it is the table that grows without bound (LiteLLM's spend logs are the known
case). Whole UTC days older than `serve.usage_retention_days` (default 90) are added to
`usage_daily` (per model, route, deployment, target, key, experiment and arm) and their rows
deleted in the same transaction, a bounded chunk at a time, so `tunegate usage` keeps every
day's totals forever and a crash mid-way loses nothing and counts nothing twice.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from gateway.journal.serving import ServeStore

DAY_S = 86_400
CHUNK = 5_000
_KEY = ("model", "route", "deployment_id", "target", "key_id", "experiment_id", "arm")
_SUMS = (
    "requests",
    "errors",
    "fallbacks",
    "estimated",
    "prompt_tokens",
    "completion_tokens",
    "cost_usd",
    "latency_ms_sum",
)


@dataclass(frozen=True)
class DailyUsage:
    """One day's totals for one (model, route, deployment, target, key, experiment, arm)."""

    day: float
    model: str
    route: str
    deployment_id: str | None
    target: str | None
    key_id: str | None
    experiment_id: str | None
    arm: str | None
    requests: int
    errors: int
    fallbacks: int
    estimated: int
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float
    latency_ms_sum: float


def day_start(ts: float) -> float:
    return float(int(ts // DAY_S) * DAY_S)


def _totals(rows: list[Any]) -> dict[tuple[Any, ...], list[float]]:
    totals: dict[tuple[Any, ...], list[float]] = {}
    for r in rows:
        key = (day_start(r["ts"]), *((r[c] or "") for c in _KEY))
        t = totals.setdefault(key, [0] * len(_SUMS))
        for i, value in enumerate(
            (
                1,
                int(r["status"] >= 400),
                int(bool(r["fallback_from"])),
                int(bool(r["estimated"])),
                r["prompt_tokens"],
                r["completion_tokens"],
                r["cost_usd"] or 0.0,
                r["latency_ms"],
            )
        ):
            t[i] += value
    return totals


def roll_up(store: ServeStore, retention_days: float, now: float | None = None) -> int:
    """Fold request rows of whole days older than the retention into daily totals; returns
    how many rows were folded. Safe to run on every replica at once (writers take turns)."""
    cutoff = day_start((time.time() if now is None else now) - retention_days * DAY_S)
    columns = ", ".join(("day", *_KEY, *_SUMS))
    marks = ",".join("?" * (1 + len(_KEY) + len(_SUMS)))
    adds = ", ".join(f"{c} = usage_daily.{c} + excluded.{c}" for c in _SUMS)
    upsert = (
        f"INSERT INTO usage_daily ({columns}) VALUES ({marks})"
        f" ON CONFLICT (day, {', '.join(_KEY)}) DO UPDATE SET {adds}"
    )
    folded = 0
    while True:
        with store.transaction() as db:
            rows = db.execute(
                "SELECT * FROM usage WHERE ts < ? ORDER BY id LIMIT ?", (cutoff, CHUNK)
            ).fetchall()
            if not rows:
                return folded
            for key, sums in _totals(rows).items():
                db.execute(upsert, (*key, *sums))
            db.execute("DELETE FROM usage WHERE ts < ? AND id <= ?", (cutoff, rows[-1]["id"]))
        folded += len(rows)


def daily(store: ServeStore, since: float) -> list[DailyUsage]:
    """The rolled-up days from `since` on (whole days: the day `since` falls in counts whole)."""
    rows = store._read("SELECT * FROM usage_daily WHERE day >= ? ORDER BY day", (day_start(since),))
    return [
        DailyUsage(
            r["day"],
            r["model"],
            r["route"],
            *((r[c] or None) for c in _KEY[2:]),
            *(r[c] for c in _SUMS),
        )
        for r in rows
    ]
