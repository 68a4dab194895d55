"""Waiting on a job: poll until it ends, with a live line of state, step and loss.

Ctrl-C ends the wait, never the job; the message says how to pick it up again.
"""

from __future__ import annotations

import sys
import time
from typing import TYPE_CHECKING

from gateway.journal import JobRecord

if TYPE_CHECKING:
    from gateway.jobs import Job


def _line(job: Job, rec: JobRecord) -> str:
    p = job.progress()
    parts = [f"{rec.id} {rec.provider} {rec.state}"]
    if p["step"] is not None:
        parts.append(f"step {p['step']}" + (f"/{p['total_steps']}" if p["total_steps"] else ""))
    if p["loss"] is not None:
        parts.append(f"loss {p['loss']:.4f}")
    return "  ".join(parts)


def wait_for(job: Job, *, progress: bool, interval: float) -> JobRecord:
    rec = job.status()
    status = None
    if progress:
        from rich.console import Console

        status = Console(stderr=True).status(_line(job, rec))
        status.start()
    try:
        while not rec.terminal:
            time.sleep(interval)
            rec = job.status()
            if status is not None:
                status.update(_line(job, rec))
    except KeyboardInterrupt:
        if status is not None:
            status.stop()
            status = None
        print(
            f"\nstopped waiting; job {rec.id} keeps running on {rec.provider}.\n"
            f"  follow it again: tunegate logs {rec.id} --follow   (or: tunegate status {rec.id})",
            file=sys.stderr,
        )
        return job.record
    finally:
        if status is not None:
            status.stop()
    return rec
