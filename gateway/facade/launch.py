"""Launching a job once, and finding it again after a crash.

`launch` writes the job to the journal before anything remote happens, uploads, lets the caller
confirm against the provider's own quote, then creates the remote job exactly once: a create is
never retried blindly; after a failed or unanswered one the provider's job list is searched for
the job's idempotency key and an existing job is adopted. `reconcile` does the same on start-up
for jobs a crash left without a remote id, and never touches a job whose launcher is still
alive (it holds the job's lease, `gateway.journal.lease`, from the intent to the create).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gateway.errors import JobError, PlanError, ProviderError, TunegateError
from gateway.facade.jobs import Job, get_provider, job_dir
from gateway.journal import JobRecord, Journal, lease
from gateway.util.retry import backoff_s, budget_s, describe, idempotent, retryable
from providers.base import Provider, Quoting
from providers.runners import RUNNERS, blocker, get_runner

if TYPE_CHECKING:
    from gateway.cost.offer import Offer
    from gateway.facade.plan import Plan
    from gateway.spec import JobSpec, ResolvedSpec

CREATE_ATTEMPTS = 5
ADOPT_GRACE_S = 600.0  # how long a create that may have reached the provider is searched for


def _offer_for(plan: Plan, backend: str | None, on: str | None = None) -> Offer:
    """The offer to launch: the cheapest feasible one whose runner can start it from here
    (`providers.runners.blocker`: a rented GPU needs SkyPilot and a bucket); `on` asks the
    rented runner for a cloud, or `any`. Offers that cannot start stay advice in the plan."""
    if on:
        return get_runner("rented").choose(plan.offers, backend, on)  # type: ignore[attr-defined]
    launchable = [o for o in plan.offers if blocker(o) is None]
    if backend in (None, "auto"):
        choice = next((o for o in launchable if o.feasible), None)
        if choice is None:
            reasons = "; ".join(f"{o.label}: {o.reason}" for o in launchable[:4])
            raise PlanError(
                f"no backend can run this job from here: {reasons}",
                fix="relax the constraints, or set up SkyPilot to rent a GPU (docs/scale-out.md)",
            )
        return choice
    offers = [o for o in launchable if o.provider == backend]
    if not offers:
        raise PlanError(f"unknown backend '{backend}'")
    feasible = [o for o in offers if o.feasible]
    if not feasible:
        raise PlanError(f"{backend} cannot run this job here: {offers[0].reason}")
    return feasible[0]


def _with_settings(
    spec: ResolvedSpec, origin: dict[str, str], offer: Offer
) -> tuple[ResolvedSpec, dict[str, str]]:
    """The spec as this offer runs it: the settings it decided (gradient checkpointing from
    its memory estimate) written in, so the journaled spec leaves nothing to a backend."""
    if not offer.settings:
        return spec, origin
    sections: dict[str, dict[str, Any]] = {}
    for key, value in offer.settings.items():
        section, name = key.split(".")
        sections.setdefault(section, {})[name] = value
    update = {k: getattr(spec, k).model_copy(update=v) for k, v in sections.items()}
    return spec.model_copy(update=update), {**origin, **offer.settings_why}


def launch(
    plan_or_spec: Plan | JobSpec,
    *,
    backend: str | None = None,
    on: str | None = None,
    journal: Journal | None = None,
    confirm: Callable[[JobRecord, dict[str, Any] | None], bool] | None = None,
) -> Job:
    """Journal, upload, quote, confirm, create once; returns as soon as the remote job exists.

    `confirm(job, provider_quote)` is asked after the upload and before anything is billed;
    returning False cancels the launch with nothing created. `on` rents a GPU through
    SkyPilot: a cloud (`runpod`, `aws`, ...) or `any`.
    """
    from gateway.facade.plan import Plan, plan

    the_plan = plan_or_spec if isinstance(plan_or_spec, Plan) else plan(plan_or_spec)
    offer = _offer_for(the_plan, backend, on)
    spec, origin = _with_settings(the_plan.spec, the_plan.origin, offer)
    if on and on != "any":  # the cloud asked for, whatever our price table listed
        spec = spec.model_copy(
            update={"resources": spec.resources.model_copy(update={"cloud": on})}
        )
        origin = {**origin, "resources.cloud": "--on"}
    if spec.train is None:
        raise PlanError("the job has no training file (set `train:` in the job file)")
    provider = get_provider(offer.provider)
    runner = get_runner(offer.kind) if offer.kind in RUNNERS else None
    if runner is not None:
        runner.check_ready()  # e.g. SkyPilot and a bucket, for a rented GPU
    if runner is None or runner.here:
        provider.check_ready()  # the backend's extras, where its worker runs here
    journal = journal or Journal()
    if not journal.reconciled:  # open_journal did it already for this journal
        reconcile(journal)
    estimate = {
        "train_usd": offer.train_usd.to_json(),
        "train_hours": offer.train_hours.to_json(),
        "billed_tokens": offer.billed_tokens,
        "serve_usd_month": offer.serve_usd_month.to_json(),
        # the data's size, so serving can be re-priced later at measured volume
        "report": {
            "examples": the_plan.report.examples,
            "avg_tokens": the_plan.report.avg_tokens,
            "p95_tokens": the_plan.report.p95_tokens,
        },
    }
    rec = journal.record_intent(
        offer.provider,
        spec.objective,
        spec.base_model,
        {**spec.model_dump(mode="json"), "_origin": origin},
        offer=offer.to_json(),
        estimate=estimate,
        name=spec.name,
    )
    with lease.hold(journal.path, rec.id):
        rec = _upload(journal, provider, rec, spec)
        _quote_and_confirm(journal, provider, rec, spec, estimate, confirm)
        _create_once(journal, provider, journal.get(rec.id), spec)
    return Job(rec.id, journal)


def _upload(journal: Journal, provider: Provider, rec: JobRecord, spec: ResolvedSpec) -> JobRecord:
    """Check, convert and upload the data; a failure is journaled before it is raised."""
    rec = journal.update(rec.id, state="uploading")
    try:
        files = provider.upload(rec, spec, job_dir(rec.id))
    except TunegateError as exc:
        journal.update(rec.id, state="failed", error=f"upload failed: {exc.message}")
        raise
    except Exception as exc:  # an SDK error after retries
        journal.update(rec.id, state="failed", error=f"upload failed: {describe(exc)}")
        raise ProviderError(f"{rec.provider}: upload failed: {describe(exc)}") from None
    return journal.update(rec.id, remote={"files": files})


def _quote_and_confirm(
    journal: Journal,
    provider: Provider,
    rec: JobRecord,
    spec: ResolvedSpec,
    estimate: dict[str, Any],
    confirm: Callable[[JobRecord, dict[str, Any] | None], bool] | None,
) -> None:
    """The provider's own quote against `max_usd`, then the user's yes: before any money."""
    quote = provider.quote(rec, spec) if isinstance(provider, Quoting) else None
    if quote:
        rec = journal.update(rec.id, estimate={**estimate, "provider_quote": quote})
        journal.add_event(rec.id, "quote", f"{rec.provider} quotes ${quote.get('usd', 0):,.2f}")
    limit = spec.constraints.max_usd
    quoted = (quote or {}).get("usd")
    if limit is not None and quoted is not None and quoted > limit:
        journal.update(rec.id, state="cancelled", error=f"quote ${quoted:,.2f} over max_usd")
        raise PlanError(
            f"{rec.provider} quotes ${quoted:,.2f}, over max_usd ${limit:,.2f}; nothing was created",
            fix="raise constraints.max_usd or shrink the job",
        )
    if confirm is None:
        return
    try:
        confirmed = confirm(rec, quote)
    except BaseException:  # Ctrl-C or a closed terminal at the prompt
        journal.update(rec.id, state="cancelled", error="not confirmed; nothing was created")
        raise
    if not confirmed:
        journal.update(rec.id, state="cancelled", error="not confirmed; nothing was created")
        raise JobError("launch not confirmed; nothing was created")


def _create_once(
    journal: Journal, provider: Provider, rec: JobRecord, spec: ResolvedSpec
) -> JobRecord:
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
                return journal.update(rec.id, remote_id=found, state="queued", error=None)
            continue
        journal.add_event(rec.id, "created", f"remote job {remote_id}")
        return journal.update(rec.id, remote_id=remote_id, state="queued", error=None)
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
        if rec.remote_id or lease.held(journal.path, rec.id):
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
            journal.update(rec.id, remote_id=found, state="queued", error=None)
            done.append(f"{rec.id}: adopted {rec.provider} job {found}")
        elif time.time() - creates[-1].ts > grace_s:
            journal.update(rec.id, state="failed", error="create never reached the provider")
            done.append(f"{rec.id}: no remote job after {grace_s:.0f} s; marked failed")
    return done


def open_journal(path: Path | None = None) -> tuple[Journal, list[str]]:
    """The journal, after start-up reconciliation of jobs a crash left without a remote id.

    Reconciliation problems (no key, provider unreachable) become notes, never failures.
    """
    journal = Journal(path)
    try:
        notes = reconcile(journal)
    except TunegateError as exc:
        notes = [f"reconciliation skipped: {exc.message}"]
    journal.reconciled = True  # a launch on this journal need not search the providers again
    return journal, notes
