"""The seam for where a local backend's worker runs: a `Runner`.

A local backend (`providers._local_jobs.LocalJobs`: TRL+PEFT, Unsloth, MLX-LM) prepares the job
folder the same way wherever it trains; its runner starts the unchanged worker (`python -m
providers.<backend>.worker JOBDIR`) somewhere, and answers for it afterwards exactly as a hosted
API would: find after doubt, poll, logs, cancel, fetch. Which runner a job uses follows from the
offer it was launched on (`Offer.kind`: `local` on this machine, `rented` through SkyPilot),
journaled with the job, so every later process picks the same one. The next runner (Slurm,
Kubernetes, Modal) is one module and one line in `providers.runners.RUNNERS`.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    from gateway.journal import JobRecord
    from gateway.journal.records import JobUpdate
    from gateway.util.checks import Check


class Worker(Protocol):
    """What a runner needs of the backend whose worker it runs."""

    name: str
    worker: str  # the worker module, e.g. "providers.local_hf.worker"
    extras: str  # what a rented machine installs to run it

    def processes(self, rec: JobRecord) -> int:
        """Training processes on one machine (torchrun ranks; 1 for a single process)."""
        ...


@runtime_checkable
class Runner(Protocol):
    kind: str  # the `Offer.kind` it runs: "local" | "rented"
    here: bool  # the worker runs on this machine (so the backend's extras must be here)

    def blocker(self, offer: Any) -> str | None:
        """None when a job on `offer` can start from here; else why not (the plan still shows
        the offer, as advice). Cheap: read from settings and caches, nothing asked remotely."""
        ...

    def check_ready(self) -> None:
        """Raise a `TunegateError` with the fix when this runner cannot start a job now."""
        ...

    def preview(self, spec: dict[str, Any]) -> dict[str, Any] | None:
        """What this runner would launch instead of tunegate's worker for `spec` (the
        Axolotl config of a several-node job), for `plan --show-spec`; None: the worker."""
        ...

    def base_path(self, base_model: str) -> str:
        """Where the worker loads the base from: a local folder here, the hub id elsewhere."""
        ...

    def stage(self, rec: JobRecord, jobdir: Path) -> None:
        """The written job folder made visible to the worker (nothing to do on this machine)."""
        ...

    def start(self, rec: JobRecord, worker: Worker, *, resume: bool = False) -> str:
        """Start the worker once; the remote id. Never retried blindly (the facade decides)."""
        ...

    def find(self, rec: JobRecord) -> str | None:
        """The worker started for `rec`, if any, after a start whose answer was lost."""
        ...

    def resume(self, rec: JobRecord, worker: Worker) -> str:
        """Start the worker again from its newest complete checkpoint; the new remote id."""
        ...

    def poll(self, rec: JobRecord) -> JobUpdate:
        """State (normalized), progress, metrics and, once it succeeded, the actual cost."""
        ...

    def logs(self, rec: JobRecord, lines: int) -> str:
        """The last `lines` of the worker's own output."""
        ...

    def cancel(self, rec: JobRecord) -> None: ...

    def collect(self, rec: JobRecord) -> None:
        """Bring the worker's adapter into the local job folder (already there on this machine)."""
        ...

    def checks(self, refresh: bool = False) -> list[Check]:
        """What `tunegate doctor` says about this runner; `refresh` may ask remotely."""
        ...
