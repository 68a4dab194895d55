"""The interface every training backend implements, as the gateway calls it.

`Planner` is what the router needs: priced offers, feasible or not, each infeasible one with a
human reason. `Provider` adds the job lifecycle the gateway drives in `gateway.facade.launch` and
`gateway.facade.jobs`. It is split into small steps rather than one `submit`, so that the gateway,
not each backend, owns "money is never spent twice": it journals before `upload`, asks
`create` exactly once, and after any doubt asks `find` (a search by the job's idempotency key)
before it would ever create again.

Optional abilities are their own protocols, checked with `isinstance`: `Quoting` (the
provider prices the uploaded files itself, shown before anything is billed) and `Resumable`
(a failed or cancelled job restarts from its last checkpoint).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

if TYPE_CHECKING:
    from gateway.cost.offer import Offer, PlanContext
    from gateway.journal import JobRecord
    from gateway.journal.records import Artifact, JobUpdate
    from gateway.spec import ResolvedSpec

Kind = Literal["local", "hosted"]


@runtime_checkable
class Planner(Protocol):
    name: str
    kind: str  # "local" (this machine or rented GPUs) or "hosted"

    def offers(self, ctx: PlanContext) -> list[Offer]:
        """Every way this backend could run the job, priced; infeasible ones carry reasons."""
        ...


@runtime_checkable
class Provider(Planner, Protocol):
    """A backend that runs jobs. Every method gets the journaled `JobRecord`, so a later
    process (after a crash, or `tunegate status` tomorrow) can pick any step up again.
    `serves_with` is the deploy target that serves what it trains (its own hosted target, or
    the engine a local adapter runs in), so advice and the fine-tuning API never map names."""

    serves_with: str

    def check_ready(self) -> None:
        """Raise a `TunegateError` with the fix when credentials or an extra are missing."""
        ...

    def upload(self, rec: JobRecord, spec: ResolvedSpec, jobdir: Path) -> dict[str, str]:
        """Check and convert the data into `jobdir`, upload it; returns the remote file ids.
        Safe to repeat: nothing here is billed."""
        ...

    def create(self, rec: JobRecord, spec: ResolvedSpec) -> str:
        """One create request, never retried inside; returns the remote job id. The caller
        decides what a failure means."""
        ...

    def find(self, rec: JobRecord) -> str | None:
        """The remote job carrying `rec.idempotency_key`, if one exists."""
        ...

    def poll(self, rec: JobRecord) -> JobUpdate:
        """State (normalized; unknown states mapped, never fatal), progress and new events."""
        ...

    def cancel(self, rec: JobRecord) -> None: ...

    def fetch(
        self, rec: JobRecord, dest: Path, *, progress: bool = False, merged: bool = False
    ) -> Artifact:
        """Bring the finished job's result to `dest` (or name the hosted model)."""
        ...


@runtime_checkable
class Quoting(Protocol):
    def quote(self, rec: JobRecord, spec: ResolvedSpec) -> dict[str, Any] | None:
        """The provider's own price for the uploaded files, or None when it has none."""
        ...


@runtime_checkable
class Resumable(Protocol):
    def resume(self, rec: JobRecord) -> str:
        """Start the job again from its last checkpoint; returns the new remote id."""
        ...


@runtime_checkable
class Logged(Protocol):
    def log_tail(self, rec: JobRecord, lines: int = 50) -> str:
        """The last lines the training process printed (a local or rented worker's log)."""
        ...
