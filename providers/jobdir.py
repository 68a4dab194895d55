"""The local worker contract, both sides of it.

A local job lives in its JOBDIR:

    spec.json        the resolved spec, the base model's local path and the backend (written by
                     the provider before the worker starts)
    train.jsonl      the training data in the backend's format (valid.jsonl if any)
    worker.pid       pid (= process group) of the detached worker
    worker.log       everything the worker printed
    status.json      state, step, total_steps, error, tokens/s, peak memory (rewritten atomically)
    metrics.jsonl    one line per logged step: step, epoch, loss, eval_loss, lr, tokens_per_s,
                     elapsed
    checkpoints/     resumable checkpoints (optimizer, scheduler and RNG state included); each
                     gets a COMPLETE marker once every file of it is written, and a resume
                     takes the newest complete one (a preemption can cut the newest short)
    adapter/         the final adapter in PEFT format, with the tokenizer and chat template
    cancel           present once a cancel was asked for

`python -m providers.<backend>.worker JOBDIR [--resume]` runs a job; the provider polls the files
exactly as it polls a hosted API. Under torchrun (several GPUs, or CPU processes with gloo) every
rank trains and rank 0 alone writes status, metrics, markers and the adapter.
"""

from __future__ import annotations

import json
import os
import resource
import signal
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

COMPLETE = "COMPLETE"  # the marker file of a checkpoint that was written to the end


def rank() -> int:
    """This process's rank under torchrun (0 when it runs alone)."""
    return int(os.environ.get("RANK", "0"))


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


class JobDir:
    """Paths and atomic writes inside one job directory."""

    def __init__(self, path: Path | str):
        self.path = Path(path)
        self.spec_file = self.path / "spec.json"
        self.status_file = self.path / "status.json"
        self.metrics_file = self.path / "metrics.jsonl"
        self.log_file = self.path / "worker.log"
        self.pid_file = self.path / "worker.pid"
        self.cancel_file = self.path / "cancel"
        self.checkpoints = self.path / "checkpoints"
        self.adapter = self.path / "adapter"

    def spec(self) -> dict[str, Any]:
        return json.loads(self.spec_file.read_text())

    def status(self) -> dict[str, Any]:
        try:
            return json.loads(self.status_file.read_text())
        except (OSError, ValueError):
            return {}

    def write_status(self, **fields: Any) -> None:
        data = {**self.status(), **fields, "updated_at": time.time()}
        tmp = self.status_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(data))
        os.replace(tmp, self.status_file)

    def append_metric(self, row: dict[str, Any]) -> None:
        with self.metrics_file.open("a") as fh:
            fh.write(json.dumps(row) + "\n")

    def metrics(self) -> list[dict[str, Any]]:
        if not self.metrics_file.exists():
            return []
        rows = []
        for line in self.metrics_file.read_text().splitlines():
            try:
                rows.append(json.loads(line))
            except ValueError:  # a line cut by a kill: skip it
                continue
        return rows

    def log_tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def complete_checkpoints(self) -> list[Path]:
        """Checkpoints written to the end: marked COMPLETE (or, in a job from before the
        markers, with their trainer state or MLX adapter written)."""
        if not self.checkpoints.is_dir():
            return []
        found = list(self.checkpoints.glob("checkpoint-*"))
        marked = [p for p in found if (p / COMPLETE).exists()]
        if marked:
            return marked
        return [
            p
            for p in found
            if (p / "trainer_state.json").exists() or (p / "adapters.safetensors").exists()
        ]

    def mark_complete(self, checkpoint: Path) -> None:
        """Called once every file of a checkpoint is on disk (rank 0)."""
        (checkpoint / COMPLETE).write_text(json.dumps({"at": time.time()}))

    def last_checkpoint(self) -> Path | None:
        """The newest complete checkpoint (its trainer state written last)."""
        done = self.complete_checkpoints()
        return max(done, key=lambda p: int(p.name.rsplit("-", 1)[1]), default=None)


def add_metrics(update: Any, job: JobDir) -> None:
    """The worker's metrics.jsonl as events (stable ids, so each is journaled once) and the
    latest step, total and loss: the same for a job here and one on a rented machine.
    `update` is a `gateway.journal.records.JobUpdate` (the provider side of the contract)."""
    from gateway.journal.records import RemoteEvent

    for i, row in enumerate(job.metrics()):
        parts = [
            f"step {row.get('step')}" + (f"/{row['total_steps']}" if row.get("total_steps") else "")
        ]
        for key in ("loss", "eval_loss"):
            if row.get(key) is not None:
                parts.append(f"{key} {row[key]:.4f}")
        if row.get("tokens_per_s"):
            parts.append(f"{row['tokens_per_s']:,.0f} tok/s")
        update.events.append(
            RemoteEvent(
                f"metric:{i}", "  ".join(parts), row.get("time"), "info", row.get("step"), row
            )
        )
        update.step, update.total_steps = row.get("step"), row.get("total_steps")
        if row.get("loss") is not None:
            update.loss = row["loss"]


def peak_memory_gb() -> float:
    """Peak resident memory of this process (ru_maxrss: KiB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024**3 if sys.platform == "darwin" else 1024**2)


def run_worker(train: Callable[[JobDir, dict[str, Any], bool], dict[str, Any]]) -> None:
    """Entry point every backend's worker module calls: parse argv, run, record the outcome.

    `train(jobdir, spec, resume)` returns the final measurements (tokens_per_s, ...).
    SIGTERM (cancel) ends the run with state cancelled.
    """
    args = sys.argv[1:]
    if not args:
        sys.exit("usage: python -m providers.<backend>.worker JOBDIR [--resume]")
    job = JobDir(args[0])
    resume = "--resume" in args

    lead = rank() == 0  # under torchrun, rank 0 alone writes the job's files

    def _terminate(signum: int, frame: Any) -> None:
        if lead:
            job.write_status(state="cancelled", error="cancelled")
        os._exit(143)

    signal.signal(signal.SIGTERM, _terminate)
    if lead:
        job.write_status(
            state="running",
            pid=os.getpid(),
            started_at=time.time(),
            error=None,
            world_size=world_size(),
        )
    try:
        result = train(job, job.spec(), resume)
    except Exception as exc:
        traceback.print_exc()
        if lead:
            job.write_status(state="failed", error=f"{type(exc).__name__}: {exc}")
        sys.exit(1)
    finally:
        _end_process_group()
    if lead:
        job.write_status(state="succeeded", peak_memory_gb=round(peak_memory_gb(), 3), **result)


def _end_process_group() -> None:
    """Leave torch.distributed cleanly (a rank that exits without it aborts at exit)."""
    dist = sys.modules.get("torch.distributed")
    if dist is not None and dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
