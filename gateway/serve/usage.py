"""What the gateway measured: requests, tokens, latency and cost per deployment or per key.

Per-token routes add up the cost of each request. Hourly routes (dedicated endpoints,
imported models, this machine) cost their hours while live in the window whether or not
they answer. That cost is spread over the tokens they served, so nothing reads $0.
"""

from __future__ import annotations

import re
import time
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

from exporters.deploy import price_of
from gateway.errors import ServeError
from gateway.journal import Journal
from gateway.journal.deployments import Deployment, deployments
from gateway.journal.rollup import DailyUsage, daily
from gateway.journal.serving import ServeStore, UsageRecord
from gateway.util.units import percentile

DEFAULT_WINDOW_S = 30 * 86_400
_SPAN = re.compile(r"^(\d+(?:\.\d+)?)\s*([mhdw])$")
_UNIT_S = {"m": 60, "h": 3600, "d": 86_400, "w": 7 * 86_400}


def since_ts(text: str | None, now: float | None = None) -> float:
    """`7d`, `24h`, `30m`, `2w`, or an ISO date/time (UTC) -> a timestamp."""
    now = time.time() if now is None else now
    if not text:
        return now - DEFAULT_WINDOW_S
    match = _SPAN.match(text.strip())
    if match:
        return now - float(match.group(1)) * _UNIT_S[match.group(2)]
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ServeError(
            f"cannot read --since {text!r}",
            fix="give a span (7d, 24h, 30m, 2w) or a date (2026-12-01)",
        ) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return when.timestamp()


@dataclass
class UsageRow:
    group: str  # the deployment's name, or the key's name
    id: str | None  # deployment id or key id (None: requests that reached no deployment)
    target: str | None
    requests: int = 0
    errors: int = 0
    fallbacks: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    estimated: int = 0  # requests whose tokens were estimated
    metered_usd: float = 0.0  # per-token cost, request by request
    hourly_usd: float = 0.0  # hourly routes: $/h x hours live in the window
    price: str = ""
    p50_ms: float | None = None
    p99_ms: float | None = None

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    @property
    def usd(self) -> float:
        return self.metered_usd + self.hourly_usd

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "tokens": self.tokens, "usd": self.usd}


@dataclass
class UsageReport:
    since: float
    until: float
    by: str
    rows: list[UsageRow]

    @property
    def requests(self) -> int:
        return sum(r.requests for r in self.rows)

    def to_json(self) -> dict[str, Any]:
        return {
            "since": self.since,
            "until": self.until,
            "by": self.by,
            "requests": self.requests,
            "rows": [r.to_json() for r in self.rows],
        }


def _hours_live(dep: Deployment, since: float, until: float) -> float:
    start = max(since, dep.created_at)
    return max(0.0, until - start) / 3600


def usage(
    journal_path: Path | str | None = None,
    *,
    by: Literal["deployment", "key", "arm"] = "deployment",
    since: float | None = None,
) -> UsageReport:
    """Measured usage since `since` (default: the last 30 days), grouped `by` deployment,
    key, or A/B arm (each experiment's incumbent and candidate; other requests as one row)."""
    until = time.time()
    since = until - DEFAULT_WINDOW_S if since is None else since
    with ServeStore(journal_path) as store:
        records = store.usage(since=since)
        days = daily(store, since)  # rows past the retention, as daily totals
        keys = {k.id: k.name for k in store.keys(all=True)}
        if by == "arm":  # experiment id -> its alias, to name the rows
            from gateway.journal.experiments import Experiments

            keys = {e.id: e.alias for e in Experiments(store).all()}
    with Journal(journal_path) as journal:
        deps = {d.id: d for d in deployments(journal, all=True)}
        rows: dict[str | None, UsageRow] = {}
        latencies: dict[str | None, list[float]] = {}
        for rec in records:
            gid = _group_id(by, rec)
            if gid not in rows:
                rows[gid] = _new_row(by, gid, rec, deps, keys)
            _add(rows[gid], rec)
            latencies.setdefault(gid, []).append(rec.latency_ms)
        for day in days:  # no percentiles for them: only totals are kept
            gid = _group_id(by, day)
            if gid not in rows:
                rows[gid] = _new_row(by, gid, day, deps, keys)
            _add_day(rows[gid], day)
        if by == "deployment":
            for gid, row in rows.items():
                dep = deps.get(gid or "")
                if dep is None:
                    continue
                price = price_of(dep, journal)
                row.price = price.label
                if price.kind == "hourly" and dep.state == "live":
                    row.hourly_usd = price.usd_per_hour * _hours_live(dep, since, until)
    for gid, row in rows.items():
        row.p50_ms = percentile(latencies.get(gid, []), 0.5)
        row.p99_ms = percentile(latencies.get(gid, []), 0.99)
    ordered = sorted(rows.values(), key=lambda r: (-r.tokens, -r.requests, r.group))
    return UsageReport(since, until, by, ordered)


def _group_id(by: str, rec: UsageRecord | DailyUsage) -> str | None:
    if by == "arm":
        return f"{rec.experiment_id}:{rec.arm}" if rec.experiment_id else None
    return rec.deployment_id if by == "deployment" else rec.key_id


def _new_row(
    by: str,
    gid: str | None,
    rec: UsageRecord | DailyUsage,
    deps: dict[str, Deployment],
    keys: dict[str, str],
) -> UsageRow:
    if by == "arm":
        if gid is None:
            return UsageRow("(no experiment)", None, None)
        exp_id, _, arm = gid.partition(":")
        return UsageRow(f"{keys.get(exp_id, exp_id)} {arm}", gid, None)
    if by == "key":
        return UsageRow(keys.get(gid or "", gid or "(no key)"), gid, None)
    dep = deps.get(gid or "")
    name = dep.name if dep else "(no deployment)"
    return UsageRow(name, gid, dep.target if dep else rec.target)


def _add(row: UsageRow, rec: UsageRecord) -> None:
    row.requests += 1
    row.errors += rec.status >= 400
    row.fallbacks += bool(rec.fallback_from)
    row.prompt_tokens += rec.prompt_tokens
    row.completion_tokens += rec.completion_tokens
    row.estimated += rec.estimated
    row.metered_usd += rec.cost_usd or 0.0


def _add_day(row: UsageRow, day: DailyUsage) -> None:
    row.requests += day.requests
    row.errors += day.errors
    row.fallbacks += day.fallbacks
    row.prompt_tokens += day.prompt_tokens
    row.completion_tokens += day.completion_tokens
    row.estimated += day.estimated
    row.metered_usd += day.cost_usd
