"""Where a local backend's worker runs, behind `providers.runners.base.Runner`.

`RUNNERS` is the one list: the offer kind a runner starts (`Offer.kind`) -> "module:Class".
A job's runner follows from the offer it was launched on, which the journal keeps, so `status`
tomorrow asks the same runner. Modules load lazily (no SkyPilot import at plan time).
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

from providers.runners.base import Runner

RUNNERS: dict[str, str] = {
    "local": "providers.runners.this_machine:ThisMachine",
    "rented": "providers.runners.skypilot:SkyPilot",
}


def get_runner(kind: str) -> Runner:
    """The runner for offers of `kind`; an unknown kind is a `JobError` naming the known."""
    if kind not in RUNNERS:
        from gateway.errors import JobError

        raise JobError(f"no runner starts {kind!r} offers", fix=f"one of: {', '.join(RUNNERS)}")
    module, _, cls = RUNNERS[kind].partition(":")
    return getattr(import_module(module), cls)()


def runner_for(rec: Any) -> Runner:
    """The runner of a journaled job: the one its offer was launched on."""
    return get_runner(str((rec.offer or {}).get("kind") or "local"))


def blocker(offer: Any) -> str | None:
    """Why `offer` cannot start from here (None: it can, or no runner of ours starts it)."""
    if offer.kind not in RUNNERS:
        return None  # a hosted offer: its provider starts it
    return get_runner(offer.kind).blocker(offer)


def all_runners() -> list[Runner]:
    return [get_runner(kind) for kind in RUNNERS]
