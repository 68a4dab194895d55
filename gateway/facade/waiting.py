"""Waiting on a job: poll until it ends, with a progress bar of steps and the latest loss.

On a terminal the bar redraws in place; into a pipe or a CI log it becomes one plain line per
change of state and at most one every `_PLAIN_EVERY_S`, so a long run is never silent.
Ctrl-C ends the wait, never the job; the message says how to pick it up again.
"""

from __future__ import annotations

import sys
import time
from typing import Any, Protocol

from gateway.journal import JobRecord


class Job(Protocol):
    """What waiting needs of a job (`gateway.facade.jobs.Job` is one): waiting imports no job code."""

    @property
    def record(self) -> JobRecord: ...

    def status(self) -> JobRecord: ...

    def progress(self) -> dict[str, Any]: ...


_PLAIN_EVERY_S = 30.0


def _line(job: Job, rec: JobRecord) -> str:
    p = job.progress()
    parts = [f"{rec.id} {rec.provider} {rec.state}"]
    if p["step"] is not None:
        parts.append(f"step {p['step']}" + (f"/{p['total_steps']}" if p["total_steps"] else ""))
    if p["loss"] is not None:
        parts.append(f"loss {p['loss']:.4f}")
    return "  ".join(parts)


class _Bar:
    """A rich progress bar on stderr: steps done of total, state and loss in the label."""

    def __init__(self) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            SpinnerColumn,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self._progress = Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=Console(stderr=True),
            transient=True,
        )
        self._task = self._progress.add_task("starting", total=None)
        self._progress.start()

    def update(self, job: Job, rec: JobRecord) -> None:
        p = job.progress()
        label = f"{rec.id} {rec.state}" + (
            f" loss {p['loss']:.4f}" if p["loss"] is not None else ""
        )
        self._progress.update(
            self._task, description=label, completed=p["step"] or 0, total=p["total_steps"]
        )

    def stop(self) -> None:
        self._progress.stop()

    def done(self, job: Job, rec: JobRecord) -> None:
        """The bar is transient: leave one line saying how the job ended."""
        self.stop()
        print(_line(job, rec), file=sys.stderr, flush=True)


class _Plain:
    """Plain lines for a pipe or a log: on every change of state, else at most every 30 s."""

    def __init__(self) -> None:
        self._state: str | None = None
        self._last = 0.0

    def update(self, job: Job, rec: JobRecord) -> None:
        now = time.monotonic()
        if rec.state != self._state or now - self._last >= _PLAIN_EVERY_S:
            print(_line(job, rec), file=sys.stderr, flush=True)
            self._state, self._last = rec.state, now

    def stop(self) -> None:
        pass

    def done(self, job: Job, rec: JobRecord) -> None:
        pass  # the final state was printed when it changed


def wait_for(job: Job, *, progress: bool, interval: float) -> JobRecord:
    rec = job.status()
    shown: _Bar | _Plain | None = None
    if progress:
        shown = _Bar() if sys.stderr.isatty() else _Plain()
        shown.update(job, rec)
    try:
        while not rec.terminal:
            time.sleep(interval)
            rec = job.status()
            if shown is not None:
                shown.update(job, rec)
    except KeyboardInterrupt:
        if shown is not None:
            shown.stop()
            shown = None
        print(
            f"\nstopped waiting; job {rec.id} keeps running on {rec.provider}.\n"
            f"  follow it again: tunegate logs {rec.id} --follow   (or: tunegate status {rec.id})",
            file=sys.stderr,
        )
        return job.record
    except BaseException:
        if shown is not None:
            shown.stop()
        raise
    if shown is not None:
        shown.done(job, rec)
    return rec
