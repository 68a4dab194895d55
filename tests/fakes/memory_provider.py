"""An in-memory training backend whose answers are scripted, for the never-pay-twice rules.

`MemoryProvider` implements `providers.base.Provider` over a `World`: remote jobs in a dict
and a script of what each create does. Launch and reconciliation run against it in
milliseconds, so every way a create can go wrong gets a unit test of its own beside the
SDK-against-HTTP-fake tests. The outcomes a create can have:

- `ok`       the job is made and its id answered;
- `lost`     the job is made, the answer lost on the way (a timeout to the caller);
- `timeout`  nothing is made, the caller sees a timeout;
- `refuse`   a definite 400: nothing is made;
- `crash`    the job is made, then the calling process dies before it can journal the id.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gateway.cost.offer import Offer, PlanContext
from gateway.journal import JobRecord
from gateway.journal.records import Artifact, JobUpdate
from gateway.spec import ResolvedSpec
from gateway.util.units import Range

NAME = "memory"


class Timeout(TimeoutError):
    """What an unanswered request looks like to the caller (retryable)."""


class Refused(Exception):
    status_code = 400


class Crash(BaseException):
    """The launching process dies here (not an Exception: nothing in tunegate catches it)."""


@dataclass
class World:
    jobs: dict[str, str] = field(default_factory=dict)  # remote id -> idempotency key
    creates: list[str] = field(default_factory=lambda: ["ok"])  # outcomes, last one repeats
    finds: list[str] = field(default_factory=lambda: ["ok"])  # ok | timeout, last one repeats
    create_calls: int = 0
    find_calls: int = 0
    on_upload: Callable[[JobRecord], None] | None = None
    states: dict[str, str] = field(default_factory=dict)  # remote id -> state
    _ids: Any = field(default_factory=lambda: itertools.count(1))

    def _next(self, script: list[str], calls: int) -> str:
        return script[min(calls, len(script)) - 1]

    def make(self, key: str) -> str:
        remote = f"mem-{next(self._ids)}"
        self.jobs[remote] = key
        self.states[remote] = "queued"
        return remote


WORLD = World()


class MemoryProvider:
    name = NAME
    kind = "hosted"
    serves_with = "openai"  # any registered target: the fake's models are never deployed

    def offers(self, ctx: PlanContext) -> list[Offer]:
        return [
            Offer(
                provider=NAME,
                kind="hosted",
                hardware=None,
                train_usd=Range.of(1.0),
                train_hours=Range.of(0.1),
                serve_usd_month=Range.zero(),
                horizon_days=ctx.spec.serving.horizon_days,
            )
        ]

    def check_ready(self) -> None:
        return None

    def upload(self, rec: JobRecord, spec: ResolvedSpec, jobdir: Path) -> dict[str, str]:
        if WORLD.on_upload is not None:
            WORLD.on_upload(rec)
        return {"training_file": "file-1"}

    def create(self, rec: JobRecord, spec: ResolvedSpec) -> str:
        WORLD.create_calls += 1
        outcome = WORLD._next(WORLD.creates, WORLD.create_calls)
        if outcome == "refuse":
            raise Refused("invalid hyperparameters")
        if outcome == "timeout":
            raise Timeout("no answer")
        remote = WORLD.make(rec.idempotency_key)
        if outcome == "lost":
            raise Timeout("answer lost")
        if outcome == "crash":
            raise Crash()
        return remote

    def find(self, rec: JobRecord) -> str | None:
        WORLD.find_calls += 1
        if WORLD._next(WORLD.finds, WORLD.find_calls) == "timeout":
            raise Timeout("list unanswered")
        return next((r for r, key in WORLD.jobs.items() if key == rec.idempotency_key), None)

    def poll(self, rec: JobRecord) -> JobUpdate:
        state = WORLD.states.get(str(rec.remote_id), "running")
        return JobUpdate(state, state)

    def cancel(self, rec: JobRecord) -> None:
        WORLD.states[str(rec.remote_id)] = "cancelled"

    def fetch(
        self, rec: JobRecord, dest: Path, *, progress: bool = False, merged: bool = False
    ) -> Artifact:
        return Artifact("", rec.id, "hosted-model", f"memory/{rec.remote_id}")
