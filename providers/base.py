"""The interface every backend implements.

`Planner` is what the router needs: priced offers, feasible or not, each infeasible one with a
human reason. `Provider` adds the job lifecycle (submit/poll/cancel/fetch) that the training
backends implement on top.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from gateway.offer import Offer, PlanContext


@runtime_checkable
class Planner(Protocol):
    name: str
    kind: str  # "local" (this machine or rented GPUs) or "hosted"

    def offers(self, ctx: PlanContext) -> list[Offer]:
        """Every way this backend could run the job, priced; infeasible ones carry reasons."""
        ...


@runtime_checkable
class Provider(Planner, Protocol):
    """A backend that can also run jobs (implemented per backend in the training issues)."""

    def submit(self, offer: Offer, ctx: PlanContext, journal: object) -> object: ...
    def poll(self, job: object) -> object: ...
    def cancel(self, job: object) -> None: ...
    def fetch(self, job: object, dest: object) -> object: ...
