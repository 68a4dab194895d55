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
    checkpoints/     resumable checkpoints (optimizer, scheduler and RNG state included)
    adapter/         the final adapter in PEFT format, with the tokenizer and chat template
    cancel           present once a cancel was asked for

`python -m providers.<backend>.worker JOBDIR [--resume]` runs a job; the provider polls the files
exactly as it polls a hosted API.
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
        """Checkpoints whose trainer state (or MLX adapter) was written, the last step of one."""
        if not self.checkpoints.is_dir():
            return []
        return [
            p
            for p in self.checkpoints.glob("checkpoint-*")
            if (p / "trainer_state.json").exists() or (p / "adapters.safetensors").exists()
        ]

    def last_checkpoint(self) -> Path | None:
        """The newest complete checkpoint (its trainer state written last)."""
        done = self.complete_checkpoints()
        return max(done, key=lambda p: int(p.name.rsplit("-", 1)[1]), default=None)


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

    def _terminate(signum: int, frame: Any) -> None:
        job.write_status(state="cancelled", error="cancelled")
        os._exit(143)

    signal.signal(signal.SIGTERM, _terminate)
    job.write_status(state="running", pid=os.getpid(), started_at=time.time(), error=None)
    try:
        result = train(job, job.spec(), resume)
    except Exception as exc:
        traceback.print_exc()
        job.write_status(state="failed", error=f"{type(exc).__name__}: {exc}")
        sys.exit(1)
    job.write_status(state="succeeded", peak_memory_gb=round(peak_memory_gb(), 3), **result)
