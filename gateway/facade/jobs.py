"""Jobs: a handle that polls its provider and journals every state and event, so `tunegate
status` works from any later process; normalized states; artifacts.

Launching (journal first, create once, reconcile after a crash) lives in `gateway.facade.launch`.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from gateway.errors import JobError
from gateway.journal import STATES, EventRecord, JobRecord, Journal
from gateway.journal.records import Artifact, JobUpdate, RemoteEvent, job_dir, normalize_state
from gateway.util.retry import idempotent
from providers import get_provider
from providers.base import Resumable

__all__ = [
    "Artifact",
    "Job",
    "JobUpdate",
    "RemoteEvent",
    "get_provider",
    "job_dir",
    "jobs",
    "normalize_state",
]


def poll_interval_s(interval: float | None = None) -> float:
    """Seconds between polls: `interval` if given, else `TUNEGATE_POLL_S` (default 10)."""
    if interval is not None:
        return float(interval)
    return float(os.environ.get("TUNEGATE_POLL_S", "10"))


class Job:
    """A handle on one journaled job; every method reads or writes the journal."""

    def __init__(self, job_id: str, journal: Journal | None = None):
        self.journal = journal or Journal()
        self.id = self.journal.get(job_id).id

    def __repr__(self) -> str:
        return f"Job({self.id!r})"

    @property
    def record(self) -> JobRecord:
        return self.journal.get(self.id)

    def status(self) -> JobRecord:
        """Poll the provider (unless the job is already final) and journal what changed."""
        rec = self.record
        if rec.terminal or not rec.remote_id:
            return rec
        update = get_provider(rec.provider).poll(rec)
        return self._apply(rec, update)

    def _apply(self, rec: JobRecord, update: JobUpdate) -> JobRecord:
        for ev in update.events:
            self.journal.add_event(
                rec.id,
                "remote",
                ev.message,
                step=ev.step,
                data={"level": ev.level, **(ev.data or {})},
                remote_id=ev.id,
                ts=ev.ts,
            )
        state, warnings = update.state, list(update.warnings)
        if state not in STATES:  # a provider module returned something odd: never crash
            state = "running"
            warnings.append(f"provider returned state {update.state!r}, treated as running")
        for warning in warnings:
            self.journal.add_event(rec.id, "warning", warning, remote_id=f"warning:{warning}")
        fields: dict[str, Any] = {}
        if state != rec.state:
            fields["state"] = state
            self.journal.add_event(rec.id, "state", f"{rec.state} -> {state} ({update.raw_state})")
        if update.remote:
            fields["remote"] = {**(rec.remote or {}), **update.remote}
        if update.actual:
            fields["actual"] = {**(rec.actual or {}), **update.actual}
        if update.error and update.error != rec.error:
            fields["error"] = update.error
        return self.journal.update(rec.id, **fields) if fields else rec

    def events(self, after: int = 0) -> list[Any]:
        return self.journal.events(self.id, after)

    def progress(self) -> dict[str, Any]:
        """Latest step, total steps and loss seen in the journaled events."""
        return progress_of(self.events())

    def wait(self, progress: bool = False, interval: float | None = None) -> JobRecord:
        """Poll until the job ends, every `interval` seconds (default `poll_interval_s()`).
        Ctrl-C stops waiting (the job keeps running) and says how to pick it up again."""
        from gateway.facade.waiting import wait_for

        return wait_for(self, progress=progress, interval=poll_interval_s(interval))

    def follow(self, *, live: bool = True, interval: float | None = None) -> Iterator[EventRecord]:
        """Every journaled event, oldest first; with `live`, keep polling the provider and
        yield new events until the job ends. Stopping the iteration never stops the job."""
        last = 0
        while True:
            rec = self.status() if live else self.record
            for ev in self.events(after=last):
                last = ev.id
                yield ev
            if not live or rec.terminal:
                return
            time.sleep(poll_interval_s(interval))

    def log_tail(self, lines: int = 50) -> str | None:
        """The last lines the training process printed (local and rented jobs; None for a
        hosted one, whose provider keeps no such log)."""
        rec = self.record
        provider = get_provider(rec.provider)
        tail = getattr(provider, "log_tail", None)
        return tail(rec, lines) if tail is not None and rec.remote_id else None

    def resume(self) -> JobRecord:
        """Start a failed or cancelled local job again from its last checkpoint."""
        rec = self.status()
        provider = get_provider(rec.provider)
        if not isinstance(provider, Resumable):
            raise JobError(
                f"{rec.provider} jobs cannot be resumed", fix="launch it again: tunegate train JOB"
            )
        if rec.state == "succeeded":
            raise JobError(f"job {rec.id} already succeeded")
        if rec.state not in ("failed", "cancelled"):
            raise JobError(f"job {rec.id} is {rec.state}", fix=f"tunegate cancel {rec.id} first")
        remote = provider.resume(rec)
        self.journal.add_event(rec.id, "resume", f"resumed from the last checkpoint ({remote})")
        return self.journal.update(rec.id, state="queued", remote_id=remote, error=None)

    def cancel(self) -> JobRecord:
        rec = self.record
        if rec.terminal:
            return rec
        self.journal.add_event(rec.id, "cancel", "cancel requested")
        if rec.remote_id:
            provider = get_provider(rec.provider)
            idempotent(lambda: provider.cancel(rec), what="cancel")
            return self.status()
        return self.journal.update(rec.id, state="cancelled", error="cancelled before launch")

    def artifact(
        self, dest: Path | None = None, *, progress: bool = False, merged: bool = False
    ) -> Artifact:
        """The job's result: fetched (downloaded and unpacked) on first call, then from the
        journal. `merged` asks a provider that offers both for merged weights, not the adapter."""
        rec = self.status()
        if rec.state != "succeeded":
            raise JobError(
                f"job {rec.id} is {rec.state}; only a succeeded job has an artifact",
                fix=f"tunegate status {rec.id}",
            )
        wanted = "merged" if merged else None
        for row in self.journal.artifacts(rec.id):
            if wanted and row["kind"] != wanted:
                continue
            if dest is None or Path(row["uri"]) == Path(dest).resolve():
                return Artifact.from_row(row)
        provider = get_provider(rec.provider)
        default = job_dir(rec.id) / ("merged" if merged else "artifact")
        got = provider.fetch(rec, dest or default, progress=progress, merged=merged)
        art_id = self.journal.add_artifact(
            rec.id, got.kind, got.uri, sha256=got.sha256, size=got.bytes, meta=got.meta
        )
        self.journal.add_event(rec.id, "artifact", f"{got.kind} at {got.uri}")
        return Artifact(art_id, rec.id, got.kind, got.uri, got.sha256, got.bytes, got.meta)


def progress_of(events: list[EventRecord]) -> dict[str, Any]:
    """Latest step, total steps and loss in a job's events (local and hosted alike)."""
    out: dict[str, Any] = {"step": None, "total_steps": None, "loss": None}
    for ev in events:
        data = ev.data or {}
        if ev.step is not None:
            out["step"] = ev.step
        if data.get("total_steps"):
            out["total_steps"] = data["total_steps"]
        if data.get("loss") is not None:
            out["loss"] = data["loss"]
    return out


def jobs(journal: Journal | None = None, **filters: Any) -> list[JobRecord]:
    """Every journaled job, newest first."""
    return (journal or Journal()).jobs(**filters)


def job_json(rec: JobRecord, journal: Journal | None = None) -> dict[str, Any]:
    """A job as `--json` shows it: ids, states, estimate next to the actual cost, progress."""
    out: dict[str, Any] = {
        "id": rec.id,
        "provider": rec.provider,
        "state": rec.state,
        "remote_id": rec.remote_id,
        "name": rec.name,
        "base_model": rec.base_model,
        "objective": rec.kind,
        "idempotency_key": rec.idempotency_key,
        "created_at": rec.created_at,
        "finished_at": rec.finished_at,
        "estimate": rec.estimate,
        "actual": rec.actual,
        "error": rec.error,
        "remote": rec.remote,
    }
    if journal is not None:
        out["progress"] = Job(rec.id, journal).progress()
        out["artifacts"] = [
            {k: a[k] for k in ("id", "kind", "uri", "sha256", "bytes")}
            for a in journal.artifacts(rec.id)
        ]
        out["evals"] = [
            {k: e[k] for k in ("id", "kind", "target", "verdict", "summary", "path", "created_at")}
            for e in journal.evals(rec.id)
        ]
    return out
