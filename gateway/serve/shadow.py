"""Shadow traffic for an A/B experiment (`tunegate ab start --shadow`): the client always gets
the incumbent's answer, and the candidate answers the same request off the request path.

Offering a request is a non-blocking put on a bounded queue: when the queue is full the shadow
copy is dropped and counted, never waited for, so the client is never delayed and a slow or
broken candidate never fails a request. A few workers send the copies (non-streaming) to the
candidate and meter each under its own request id (`REQ-shadow`), arm `shadow`, so shadow
traffic is costed apart from what clients were served. An experiment's `max_usd` caps what its
shadow copies may spend: past it, no more are sent.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from gateway.journal.experiments import Experiment, Experiments
from gateway.journal.serving import ServeStore, UsageRecord
from gateway.serve.judging import judge_pair
from gateway.serve.proxy import Outcome, Unreachable
from gateway.serve.registry import Registry, Target
from gateway.serve.scoring import answer_of, observe
from gateway.serve.spend import Spend

QUEUE = 64  # copies waiting; past this they are dropped
WORKERS = 2


@dataclass
class _Copy:
    exp: Experiment
    body: dict[str, Any]
    route: str
    request_id: str
    reference: str | None = None  # scored like the client's answer (`gateway.serve.scoring`)
    incumbent_answer: str | None = None  # what the client got: the judge's other side


@dataclass
class Shadow:
    """The shadow queue and its workers; `send` is how one copy reaches the candidate."""

    registry: Registry
    store: ServeStore
    submit: Callable[[UsageRecord], None]  # the meter's
    send: Callable[..., Any]  # (target, body, route, done) -> awaitable, raising Unreachable
    queue: asyncio.Queue[_Copy] = field(default_factory=lambda: asyncio.Queue(QUEUE))
    dropped: int = 0
    sent: int = 0
    spend: Spend = field(init=False)  # what copies and the judge have cost

    def __post_init__(self) -> None:
        self.spend = Spend(self.store)

    def offer(
        self,
        exp: Experiment,
        body: dict[str, Any],
        route: str,
        request_id: str,
        reference: str | None = None,
        incumbent_answer: str | None = None,
    ) -> bool:
        """Queue a copy of an answered request for the candidate; False when it was not (the
        queue is full, or the experiment's shadow budget is spent)."""
        cap = exp.settings.get("max_usd")
        if cap is not None and self.spend.spent(exp.id, "shadow") >= float(cap):
            return False
        copy = {k: v for k, v in body.items() if k not in ("stream", "stream_options")}
        try:
            self.queue.put_nowait(_Copy(exp, copy, route, request_id, reference, incumbent_answer))
        except asyncio.QueueFull:
            self.dropped += 1
            return False
        return True

    async def work(self) -> None:
        """One worker: send copies until cancelled."""
        while True:
            copy = await self.queue.get()
            try:
                await self._one(copy)
            finally:
                self.queue.task_done()

    async def _one(self, copy: _Copy) -> None:
        start = time.perf_counter()
        chain = self.registry.resolve(copy.exp.candidate) or []
        target = chain[0] if chain else None
        outcome = Outcome(502, error="the candidate is not live")

        def done(out: Outcome) -> None:
            nonlocal outcome
            outcome = out

        content: Any = None
        if target is not None and target.upstream is not None and not target.problem:
            try:
                _, content, _ = await self.send(target, copy.body, copy.route, done)
            except Unreachable as exc:
                outcome = Outcome(502, error=str(exc))
            except Exception as exc:  # a shadow error is recorded, never raised
                outcome = Outcome(500, error=f"{type(exc).__name__}: {exc}")
        self._record(copy, target, outcome, (time.perf_counter() - start) * 1000)
        if outcome.status < 400:
            rid = f"{copy.request_id}-shadow"
            observe(
                Experiments(self.store), copy.exp, copy.body, content, copy.reference, rid, "shadow"
            )
            answer = answer_of(content) if isinstance(content, bytes) else None
            if answer is not None and copy.incumbent_answer is not None:
                judged = await asyncio.get_running_loop().run_in_executor(
                    None, judge_pair, self.spend, copy.exp, copy.body, copy.request_id,
                    copy.incumbent_answer, answer,
                )  # fmt: skip
                if judged is not None:
                    self.submit(judged)

    def _record(self, copy: _Copy, target: Target | None, out: Outcome, ms: float) -> None:
        dep = target.deployment if target else None
        cost = (
            target.price.request_cost(out.prompt_tokens, out.completion_tokens) if target else None
        )
        self.spend.add(copy.exp.id, "shadow", cost or 0.0)
        self.sent += 1
        self.submit(
            UsageRecord(
                request_id=f"{copy.request_id}-shadow",
                ts=time.time(),
                model=str(copy.body.get("model", ""))[:200],
                route=copy.route,
                status=out.status,
                latency_ms=ms,
                deployment_id=dep.id if dep else copy.exp.candidate,
                target=dep.target if dep else None,
                prompt_tokens=out.prompt_tokens,
                completion_tokens=out.completion_tokens,
                estimated=out.estimated,
                cost_usd=cost,
                error=out.error[:500] if out.error else None,
                experiment_id=copy.exp.id,
                arm="shadow",
            )
        )
