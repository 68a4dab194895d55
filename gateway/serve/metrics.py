"""`/metrics` in Prometheus's text format, from the usage records the gateway already makes.

Every record the meter is handed (client requests, shadow copies, judge calls) is counted here
as it is submitted, so the metrics and the journal agree and nothing is measured twice. Labels
are bounded: a deployment id, the model name only when it resolved to a deployment (aliases and
deployment names; a client's typo is `-`), an API key's id (never the key), the A/B arm, the
route and the status class; no prompt text anywhere. Each gateway has its own registry, so two
in one process (the tests) do not share counters.

Names (all prefixed `tunegate_`): `requests_total`, `request_latency_seconds` (histogram),
`tokens_total` (kind=prompt|completion), `cost_usd_total`, `fallbacks_total`, and, read when
scraped: `engine_starts_total`, `engine_up`, `usage_buffer_depth`, `usage_written_total`,
`usage_write_failures_total`, `usage_last_batch_seconds`, `shadow_sent_total`,
`shadow_dropped_total`. docs/serve.md#metrics lists them with their labels.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from gateway.journal.serving import UsageRecord

LABELS = ("deployment", "model", "key", "arm", "route", "status")
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def _status(code: int) -> str:
    return f"{code // 100}xx"


class Metrics:
    def __init__(self, state: Callable[[], dict[str, Any]]):
        """`state()` gives the gauges read at scrape time: engines (their `states()`), meter
        (pending, written, failures, last_batch_s) and shadow (sent, dropped)."""
        from gateway.catalog.extras import require

        require("prometheus_client", what="tunegate serve's /metrics")
        from prometheus_client import CollectorRegistry, Counter, Histogram

        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "tunegate_requests", "Requests through the door, by outcome.", LABELS,
            registry=self.registry,
        )  # fmt: skip
        self.latency = Histogram(
            "tunegate_request_latency_seconds", "Time from request to the last byte.",
            ("deployment", "route"), buckets=LATENCY_BUCKETS, registry=self.registry,
        )  # fmt: skip
        self.tokens = Counter(
            "tunegate_tokens", "Tokens metered (estimated where the upstream gave none).",
            (*LABELS[:5], "kind"), registry=self.registry,
        )  # fmt: skip
        self.cost = Counter(
            "tunegate_cost_usd", "Dollars metered on per-token routes.", LABELS[:5],
            registry=self.registry,
        )  # fmt: skip
        self.fallbacks = Counter(
            "tunegate_fallbacks", "Requests another deployment answered after one failed.",
            ("deployment", "failed"), registry=self.registry,
        )  # fmt: skip
        self.registry.register(_Scraped(state))

    def observe(self, rec: UsageRecord) -> None:
        """Count one usage record (called by the meter as the record is submitted)."""
        dep = rec.deployment_id or "-"
        model = rec.model if rec.deployment_id else "-"
        base = (dep, model, rec.key_id or "-", rec.arm or "-", rec.route)
        self.requests.labels(*base, _status(rec.status)).inc()
        self.latency.labels(dep, rec.route).observe(rec.latency_ms / 1000)
        if rec.prompt_tokens:
            self.tokens.labels(*base, "prompt").inc(rec.prompt_tokens)
        if rec.completion_tokens:
            self.tokens.labels(*base, "completion").inc(rec.completion_tokens)
        if rec.cost_usd:
            self.cost.labels(*base).inc(rec.cost_usd)
        for failed in (rec.fallback_from or "").split(","):
            if failed and rec.status < 400:
                self.fallbacks.labels(dep, failed).inc()

    def render(self) -> bytes:
        from prometheus_client import generate_latest

        return generate_latest(self.registry)


class _Scraped:
    """Gauges and counters that live elsewhere (engines, the meter's writer, shadow copies),
    read when Prometheus scrapes."""

    def __init__(self, state: Callable[[], dict[str, Any]]):
        self.state = state

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        now = self.state()
        starts = CounterMetricFamily(
            "tunegate_engine_starts", "Engine process starts (restarts are starts after the first).",
            labels=["deployment"],
        )  # fmt: skip
        up = GaugeMetricFamily(
            "tunegate_engine_up", "1 while the engine answers.", labels=["deployment"]
        )
        for engine in now["engines"]:
            starts.add_metric([engine["deployment"]], engine["starts"])
            up.add_metric([engine["deployment"]], 1.0 if engine["url"] else 0.0)
        yield starts
        yield up
        meter, shadow = now["meter"], now["shadow"]
        yield GaugeMetricFamily(
            "tunegate_usage_buffer_depth", "Usage records waiting to be written.", meter["pending"]
        )
        yield CounterMetricFamily(
            "tunegate_usage_written", "Usage records written.", meter["written"]
        )
        yield CounterMetricFamily(
            "tunegate_usage_write_failures", "Batch writes the store refused (each is kept and retried).",
            meter["failures"],
        )  # fmt: skip
        yield GaugeMetricFamily(
            "tunegate_usage_last_batch_seconds", "How long the last batch took to write.",
            meter["last_batch_s"],
        )  # fmt: skip
        yield CounterMetricFamily(
            "tunegate_usage_recovered", "Usage records a stopped gateway had spooled, written at start.",
            meter["recovered"],
        )  # fmt: skip
        yield CounterMetricFamily("tunegate_shadow_sent", "A/B shadow copies sent.", shadow["sent"])
        yield CounterMetricFamily(
            "tunegate_shadow_dropped", "A/B shadow copies dropped (queue full or over budget).",
            shadow["dropped"],
        )  # fmt: skip
