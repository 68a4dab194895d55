"""The one usage record of a request, built whichever way the request ends (answered, fallen
back, refused, failed) and handed to the `Meter`; it carries the A/B experiment and arm when
the request's alias has one."""

from __future__ import annotations

import json
import time
from typing import Any

from starlette.responses import Response

from gateway.journal.serving import ApiKey, UsageRecord
from gateway.serve.meter import Meter
from gateway.serve.proxy import Outcome
from gateway.serve.registry import Target
from gateway.util.retry import redact


class Metering:
    """Builds the one usage record of a request, whichever way it ends."""

    def __init__(
        self,
        meter: Meter,
        log_prompts: bool,
        rid: str,
        route: str,
        key: ApiKey | None,
        start: float,
    ):
        self.meter, self.log_prompts = meter, log_prompts
        self.rid, self.route, self.key, self.start = rid, route, key, start
        self.body: dict[str, Any] = {}
        self.target: Target | None = None
        self.failed: list[tuple[Target, str]] = []
        self.experiment: str | None = None  # the alias's experiment, and this request's arm
        self.arm: str | None = None
        self._done = False

    def headers(self, failed: list[tuple[Target, str]]) -> dict[str, str]:
        out = {"x-request-id": self.rid}
        if self.target is not None:
            out["x-tunegate-deployment"] = self.target.deployment.id
        if failed:
            out["x-tunegate-fallback-from"] = ",".join(t.deployment.id for t, _ in failed)
        return out

    def refused(self, response: Response, why: str, status: int | None = None) -> Response:
        self.done(Outcome(status or response.status_code, error=why))
        response.headers["x-request-id"] = self.rid
        return response

    def done(self, outcome: Outcome) -> None:
        if self._done:
            return
        self._done = True
        dep = self.target.deployment if self.target else None
        price = self.target.price if self.target else None
        cost = (
            price.request_cost(outcome.prompt_tokens, outcome.completion_tokens) if price else None
        )
        prompt = None
        if self.log_prompts and self.body:
            prompt = redact(json.dumps(self.body.get("messages") or self.body.get("prompt")))
        self.meter.submit(
            UsageRecord(
                request_id=self.rid,
                ts=time.time(),
                model=str(self.body.get("model", ""))[:200],
                route=self.route,
                status=outcome.status,
                latency_ms=(time.perf_counter() - self.start) * 1000,
                deployment_id=dep.id if dep else None,
                target=dep.target if dep else None,
                key_id=self.key.id if self.key else None,
                stream=bool(self.body.get("stream")),
                prompt_tokens=outcome.prompt_tokens,
                completion_tokens=outcome.completion_tokens,
                estimated=outcome.estimated,
                cost_usd=cost,
                fallback_from=",".join(t.deployment.id for t, _ in self.failed) or None,
                error=redact(outcome.error)[:500] if outcome.error else None,
                prompt_json=prompt,
                experiment_id=self.experiment,
                arm=self.arm,
            )
        )
