"""Jobs: launch once, track anywhere, never pay twice.

`launch` writes the job to the journal before anything remote happens, uploads, lets the caller
confirm against the provider's own quote, then creates the remote job exactly once: a create is
never retried blindly; after a failed or unanswered one the provider's job list is searched for
the job's idempotency key and an existing job is adopted. `reconcile` does the same on start-up
for jobs a crash left without a remote id. A `Job` polls its provider and journals every state
and event, so `tunegate status` works from any later process.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gateway.catalog import tunegate_home
from gateway.errors import JobError, PlanError, ProviderError, TunegateError
from gateway.journal import STATES, JobRecord, Journal
from gateway.retry import backoff_s, budget_s, describe, idempotent, retryable

if TYPE_CHECKING:
    from gateway.offer import Offer
    from gateway.router import Plan
    from gateway.spec import JobSpec

CREATE_ATTEMPTS = 5
ADOPT_GRACE_S = 600.0  # how long a create that may have reached the provider is searched for


@dataclass
class RemoteEvent:
    """One provider event; `id` is stable across polls so the journal stores it once."""

    id: str
    message: str
    ts: float | None = None
    level: str = "info"
    step: int | None = None
    data: dict[str, Any] | None = None


@dataclass
class JobUpdate:
    """What one poll of a provider learned."""

    raw_state: str
    state: str
    step: int | None = None
    total_steps: int | None = None
    loss: float | None = None
    events: list[RemoteEvent] = field(default_factory=list)
    actual: dict[str, Any] | None = None  # billed tokens and cost, once the provider says
    error: str | None = None
    remote: dict[str, Any] = field(default_factory=dict)  # output model names, checkpoints
    warnings: list[str] = field(default_factory=list)  # e.g. an unknown state, mapped


@dataclass(frozen=True)
class Artifact:
    """What a finished job produced: a local directory or a hosted model id."""

    id: str
    job_id: str
    kind: str  # hosted-model | adapter | merged
    uri: str
    sha256: str | None = None
    bytes: int | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "job_id": self.job_id,
            "kind": self.kind,
            "uri": self.uri,
            "sha256": self.sha256,
            "bytes": self.bytes,
            **({"meta": self.meta} if self.meta else {}),
        }


_NEAREST = (
    ("cancel", "cancelled"),
    ("fail", "failed"),
    ("error", "failed"),
    ("succe", "succeeded"),
    ("complete", "succeeded"),
    ("done", "succeeded"),
    ("queue", "queued"),
    ("pend", "queued"),
    ("valid", "queued"),
    ("upload", "running"),
    ("run", "running"),
    ("train", "running"),
)


def normalize_state(raw: str | None, known: dict[str, str]) -> tuple[str, str | None]:
    """(normalized state, warning) for a provider's state; unknown ones map to the nearest."""
    text = str(raw or "").strip()
    low = text.lower()
    if low in known:
        return known[low], None
    nearest = next((state for hint, state in _NEAREST if hint in low), "running")
    return nearest, f"unknown provider state {text!r}, treated as {nearest}"


def job_dir(job_id: str) -> Path:
    """Where a job's converted data, downloads and artifacts live."""
    path = tunegate_home() / "jobs" / job_id
    path.mkdir(parents=True, exist_ok=True)
    return path


def get_provider(name: str) -> Any:
    """The backend that runs jobs for `name`; planners that cannot run jobs are refused."""
    from providers import get_planner

    provider = get_planner(name)
    if not hasattr(provider, "create"):
        raise JobError(
            f"the {name} backend cannot launch jobs in this version of tunegate",
            fix="choose a hosted backend with --backend openai or --backend together",
        )
    return provider


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
        out: dict[str, Any] = {"step": None, "total_steps": None, "loss": None}
        for ev in self.events():
            data = ev.data or {}
            if ev.step is not None:
                out["step"] = ev.step
            if data.get("total_steps"):
                out["total_steps"] = data["total_steps"]
            if data.get("loss") is not None:
                out["loss"] = data["loss"]
        return out

    def wait(self, progress: bool = False, interval: float = 10.0) -> JobRecord:
        """Poll until the job ends. Ctrl-C stops waiting (the job keeps running) and says how
        to pick it up again."""
        from gateway.waiting import wait_for

        return wait_for(self, progress=progress, interval=interval)

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
                return Artifact(
                    row["id"],
                    rec.id,
                    row["kind"],
                    row["uri"],
                    row["sha256"],
                    row["bytes"],
                    row["meta"] or {},
                )
        provider = get_provider(rec.provider)
        default = job_dir(rec.id) / ("merged" if merged else "artifact")
        got = provider.fetch(rec, dest or default, progress=progress, merged=merged)
        art_id = self.journal.add_artifact(
            rec.id, got.kind, got.uri, sha256=got.sha256, size=got.bytes, meta=got.meta
        )
        self.journal.add_event(rec.id, "artifact", f"{got.kind} at {got.uri}")
        return Artifact(art_id, rec.id, got.kind, got.uri, got.sha256, got.bytes, got.meta)


def _offer_for(plan: Plan, backend: str | None) -> Offer:
    if backend in (None, "auto"):
        if plan.choice is None:
            raise PlanError(
                "no backend can run this job: "
                + "; ".join(f"{o.label}: {o.reason}" for o in plan.offers[:4]),
                fix="relax the constraints or pick a backend with --backend",
            )
        return plan.choice
    offers = [o for o in plan.offers if o.provider == backend]
    if not offers:
        raise PlanError(f"unknown backend '{backend}'")
    feasible = [o for o in offers if o.feasible]
    if not feasible:
        raise PlanError(f"{backend} cannot run this job: {offers[0].reason}")
    return feasible[0]


def launch(
    plan_or_spec: Plan | JobSpec,
    *,
    backend: str | None = None,
    journal: Journal | None = None,
    confirm: Callable[[JobRecord, dict[str, Any] | None], bool] | None = None,
) -> Job:
    """Journal, upload, quote, confirm, create once; returns as soon as the remote job exists.

    `confirm(job, provider_quote)` is asked after the upload and before anything is billed;
    returning False cancels the launch with nothing created.
    """
    from gateway.router import Plan, plan

    the_plan = plan_or_spec if isinstance(plan_or_spec, Plan) else plan(plan_or_spec)
    offer = _offer_for(the_plan, backend)
    spec = the_plan.spec
    if spec.train is None:
        raise PlanError("the job has no training file (set `train:` in the job file)")
    provider = get_provider(offer.provider)
    provider.check_ready()
    journal = journal or Journal()
    reconcile(journal)
    estimate = {
        "train_usd": offer.train_usd.to_json(),
        "train_hours": offer.train_hours.to_json(),
        "billed_tokens": offer.billed_tokens,
        "serve_usd_month": offer.serve_usd_month.to_json(),
    }
    rec = journal.record_intent(
        offer.provider,
        spec.objective,
        spec.base_model,
        {**spec.model_dump(mode="json"), "_origin": the_plan.origin},
        offer=offer.to_json(),
        estimate=estimate,
        name=spec.name,
    )
    rec = journal.update(rec.id, state="uploading")
    try:
        files = provider.upload(rec, spec, job_dir(rec.id))
    except TunegateError as exc:
        journal.update(rec.id, state="failed", error=f"upload failed: {exc.message}")
        raise
    except Exception as exc:  # an SDK error after retries
        journal.update(rec.id, state="failed", error=f"upload failed: {describe(exc)}")
        raise ProviderError(f"{offer.provider}: upload failed: {describe(exc)}") from None
    rec = journal.update(rec.id, remote={"files": files})
    quote = provider.quote(rec, spec) if hasattr(provider, "quote") else None
    if quote:
        rec = journal.update(rec.id, estimate={**estimate, "provider_quote": quote})
        journal.add_event(rec.id, "quote", f"{offer.provider} quotes ${quote.get('usd', 0):,.2f}")
    limit = spec.constraints.max_usd
    quoted = (quote or {}).get("usd")
    if limit is not None and quoted is not None and quoted > limit:
        journal.update(rec.id, state="cancelled", error=f"quote ${quoted:,.2f} over max_usd")
        raise PlanError(
            f"{offer.provider} quotes ${quoted:,.2f}, over max_usd ${limit:,.2f}; nothing was created",
            fix="raise constraints.max_usd or shrink the job",
        )
    if confirm is not None:
        try:
            confirmed = confirm(rec, quote)
        except BaseException:  # Ctrl-C or a closed terminal at the prompt
            journal.update(rec.id, state="cancelled", error="not confirmed; nothing was created")
            raise
        if not confirmed:
            journal.update(rec.id, state="cancelled", error="not confirmed; nothing was created")
            raise JobError("launch not confirmed; nothing was created")
    _create_once(journal, provider, journal.get(rec.id), spec)
    return Job(rec.id, journal)


def _create_once(journal: Journal, provider: Any, rec: JobRecord, spec: JobSpec) -> JobRecord:
    """Create the remote job at most once: after any doubtful failure, search before retrying.

    Attempts continue for the retry budget (`TUNEGATE_RETRY_BUDGET_S`), at least CREATE_ATTEMPTS.
    """
    deadline = time.monotonic() + budget_s()
    attempt = 0
    while attempt < CREATE_ATTEMPTS or time.monotonic() < deadline:
        attempt += 1
        journal.add_event(rec.id, "create", f"create request {attempt} (key {rec.idempotency_key})")
        try:
            remote_id = provider.create(rec, spec)
        except Exception as exc:  # one attempt, no SDK retries: decide here
            reason = describe(exc)
            if not retryable(exc):  # a definite refusal (400, 401, 403, 404, 422): nothing made
                journal.update(rec.id, state="failed", error=f"create refused: {reason}")
                raise ProviderError(f"{rec.provider} refused the job: {reason}") from None
            journal.add_event(rec.id, "create", f"create unanswered ({reason}); searching")
            time.sleep(backoff_s(attempt, exc))
            found = idempotent(lambda: provider.find(rec), what="find")
            if found:
                journal.add_event(rec.id, "adopted", f"found {found} created by request {attempt}")
                return journal.update(rec.id, remote_id=found, state="queued")
            continue
        journal.add_event(rec.id, "created", f"remote job {remote_id}")
        return journal.update(rec.id, remote_id=remote_id, state="queued")
    journal.update(rec.id, error="create unanswered; reconciled on the next start")
    raise ProviderError(
        f"{rec.provider} did not answer {attempt} create requests and has no job with key "
        f"{rec.idempotency_key}",
        fix="run `tunegate jobs` later: it searches again and adopts the job if it appears",
    )


def reconcile(journal: Journal, *, grace_s: float = ADOPT_GRACE_S) -> list[str]:
    """Adopt or close every job a crash left without a remote id; returns what was done."""
    done = []
    for rec in journal.unfinished():
        if rec.remote_id:
            continue
        creates = [e for e in journal.events(rec.id) if e.kind == "create"]
        if not creates:
            if time.time() - rec.updated_at > 60:
                journal.update(rec.id, state="failed", error="interrupted before create")
                done.append(f"{rec.id}: interrupted before create; nothing was created")
            continue
        try:
            provider = get_provider(rec.provider)
            found = idempotent(lambda p=provider, r=rec: p.find(r), what="find")
        except Exception as exc:
            done.append(f"{rec.id}: could not search {rec.provider} ({describe(exc)}); will retry")
            continue
        if found:
            journal.add_event(rec.id, "adopted", f"found {found} after a restart")
            journal.update(rec.id, remote_id=found, state="queued")
            done.append(f"{rec.id}: adopted {rec.provider} job {found}")
        elif time.time() - creates[-1].ts > grace_s:
            journal.update(rec.id, state="failed", error="create never reached the provider")
            done.append(f"{rec.id}: no remote job after {grace_s:.0f} s; marked failed")
    return done


def jobs(journal: Journal | None = None, **filters: Any) -> list[JobRecord]:
    """Every journaled job, newest first."""
    return (journal or Journal()).jobs(**filters)


def open_journal(path: Path | None = None) -> tuple[Journal, list[str]]:
    """The journal, after start-up reconciliation of jobs a crash left without a remote id.

    Reconciliation problems (no key, provider unreachable) become notes, never failures.
    """
    journal = Journal(path)
    try:
        notes = reconcile(journal)
    except TunegateError as exc:
        notes = [f"reconciliation skipped: {exc.message}"]
    return journal, notes


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
    return out
