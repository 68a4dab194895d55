"""Jobs: a handle that polls its provider and journals every state and event, so `tunegate
status` works from any later process; normalized states; artifacts.

Launching (journal first, create once, reconcile after a crash) lives in `gateway.facade.launch`.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gateway.errors import JobError, SpecError, TunegateError
from gateway.journal import STATES, EventRecord, JobRecord, Journal
from gateway.journal.records import Artifact, JobUpdate, RemoteEvent, job_dir, normalize_state
from gateway.spec import EvalConfig
from gateway.util.retry import idempotent
from providers import get_provider
from providers.base import Logged, Resumable

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
        self.evaluation: Any = None  # what `wait` ran of the job file's `eval:` (a JobEval)

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

    def wait(
        self, progress: bool = False, interval: float | None = None, *, evaluate: bool = True
    ) -> JobRecord:
        """Poll until the job ends, every `interval` seconds (default `poll_interval_s()`).
        Ctrl-C stops waiting (the job keeps running) and says how to pick it up again.

        A job that succeeded then runs its job file's `eval:` once (unless `evaluate=False`),
        the whole workflow in the SDK as in the CLI; what ran, or why it could not, is in
        `self.evaluation` and the job's events, never raised (the job stays succeeded)."""
        from gateway.facade.waiting import wait_for

        rec = wait_for(self, progress=progress, interval=poll_interval_s(interval))
        if evaluate and rec.state == "succeeded":
            self.evaluation = after_training(rec.id, journal=self.journal, progress=progress)
        return rec

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
        if not isinstance(provider, Logged) or not rec.remote_id:
            return None
        return provider.log_tail(rec, lines)

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


# The job file's `eval:`, run once the job has succeeded: the task eval of the job's model
# against its base on the held-out data (the job's validation file unless `eval.data` names
# another), with the contamination check against the training file first, then the lm-eval
# regression when `eval.suite` names one. Reports are stored with the job and journaled, so
# `tunegate jobs` and `status` show the verdict. `Job.wait` (so `train --wait` and `resume
# --wait`) runs it as soon as the job succeeds; `tunegate eval JOB` (no `--data`) runs it again
# on demand. An eval that cannot run never changes the job's state: the reason is journaled as
# an event and returned.
@dataclass
class JobEval:
    """What ran after a job: its reports, or why nothing could run."""

    job_id: str
    reports: list[Any] = field(default_factory=list)
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "job_id": self.job_id,
            "reports": [r.to_json() for r in self.reports],
            "error": self.error,
        }


def eval_config(spec: dict[str, Any]) -> EvalConfig | None:
    """A journaled spec's `eval:` section, validated (None when the job has none)."""
    raw = spec.get("eval")
    return None if raw is None else EvalConfig.model_validate(raw)


def evaluate_job(
    job_id: str,
    *,
    journal: Journal | None = None,
    progress: bool = False,
    baselines: list[str] | None = None,
) -> JobEval:
    """Run a succeeded job's configured eval now (`baselines`, when given, replace its
    `eval.baselines`); raises when it cannot."""
    journal = journal or Journal()
    rec = journal.get(job_id)
    if rec.state != "succeeded":
        raise JobError(f"job {rec.id} is {rec.state}; only a succeeded job is evaluated")
    cfg = eval_config(rec.spec)
    if cfg is not None and baselines:
        cfg = cfg.model_copy(update={"baselines": list(baselines)})
    if cfg is None:
        raise SpecError(
            f"job {rec.id} has no `eval:` in its job file",
            fix=f"tunegate eval {rec.id} --data HELDOUT.jsonl [--scorer exact|regex|json|tool]",
        )
    data = cfg.data or rec.spec.get("validation")
    if not data:
        raise SpecError(
            f"job {rec.id}: `eval:` names no data and the job has no validation file",
            fix="add `data: heldout.jsonl` under `eval:` in the job file",
        )
    train = rec.spec.get("train")
    train_path = Path(train) if train and Path(train).is_file() else None
    out = JobEval(rec.id)
    journal.add_event(rec.id, "eval", f"task eval on {Path(data).name} ({cfg.scorer}) started")
    from gateway.evaluate.targets import job_target
    from gateway.evaluate.task import task_eval

    tuned = job_target(rec.id, str(Job(rec.id, journal).artifact().uri))
    price, base = None, None
    if cfg.baselines:
        from gateway.facade.prompt_cost import pricer

        price, base = pricer(tuned)
    report = task_eval(
        tuned,
        Path(data),
        scorer=cfg.scorer,
        pattern=cfg.pattern,
        schema=cfg.json_schema,
        limit=cfg.limit,
        max_tokens=cfg.max_tokens,
        train=train_path,
        progress=progress,
        baselines=cfg.baselines,
        price=price,
        base_model=base,
    )
    out.reports.append(report)
    s = report.stats
    journal.add_event(
        rec.id,
        "eval",
        f"task eval: {s.verdict} ({s.base:.1f} -> {s.tuned:.1f}, {s.delta:+.1f} points, "
        f"95% CI [{s.ci_low:+.1f}, {s.ci_high:+.1f}]): {report.path}",
        data={"report": report.id, "verdict": s.verdict},
    )
    for arm in report.arms:
        a = arm.stats
        journal.add_event(
            rec.id,
            "eval",
            f"against {arm.label}: {arm.verdict} ({a.base:.1f} -> fine-tune {a.tuned:.1f}, "
            f"{a.delta:+.1f} points, 95% CI [{a.ci_low:+.1f}, {a.ci_high:+.1f}])",
            data={"report": report.id, "arm": arm.name, "verdict": a.verdict},
        )
    for sentence in (report.cost or {}).get("sentences") or []:
        journal.add_event(rec.id, "eval", sentence, data={"report": report.id})
    if cfg.suite:
        from gateway.evaluate.regress import regress

        reg = regress(tuned, suite=cfg.suite, limit=cfg.limit)
        out.reports.append(reg)
        worst = ", ".join(f"{k} {v['verdict']}" for k, v in reg.tasks.items())
        journal.add_event(rec.id, "eval", f"regression ({cfg.suite}): {worst}: {reg.path}")
    return out


def after_training(
    job_id: str, *, journal: Journal | None = None, progress: bool = False
) -> JobEval | None:
    """The job's eval, once: None when it has no `eval:`, is not a success, or was evaluated
    already; what could not run is journaled and returned, never raised."""
    journal = journal or Journal()
    rec = journal.get(job_id)
    if rec.state != "succeeded" or rec.spec.get("eval") is None:
        return None
    if any(row["kind"] == "task" for row in journal.evals(rec.id)):
        return None
    if progress:
        print("evaluating against the base (`eval:` in the job file)...", file=sys.stderr)
    try:
        return evaluate_job(rec.id, journal=journal, progress=progress)
    except (TunegateError, ImportError, OSError, RuntimeError, ValueError) as exc:
        # the job succeeded and stays so; the reason is kept where `status` shows it
        message = f"eval could not run: {exc}"
        journal.add_event(rec.id, "eval", message, data={"level": "error"})
        return JobEval(rec.id, error=message)
