"""The break-even monitor: measured volume, re-priced on every serving route.

The volume is tokens per day over a window, and the share of it that is generated. Each
model's job is priced again with the router's serving model at that volume, against what its
current deployment costs. When another route is cheaper by more than a threshold, it says so,
with the command that moves the model.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from exporters.deploy import price_of
from gateway.catalog import Catalog, load_catalog
from gateway.cost.deployments import job_of
from gateway.data.report import DatasetReport, quick_report
from gateway.errors import TunegateError
from gateway.journal import JobRecord, Journal
from gateway.journal.deployments import Deployment, deployments
from gateway.journal.serving import ServeStore
from gateway.spec import JobSpec
from gateway.util.units import DAYS_PER_MONTH, HOURS_PER_MONTH, human_count, human_usd
from providers import serving_target

THRESHOLD = 0.2  # another route must be this much cheaper to be advised
WINDOW_DAYS = 7.0


def _route(target: str) -> str:
    """Deploy targets that run on this machine are one route (moving between them saves
    nothing); a hosted target is a route of its own."""
    from exporters.deploy import get_deployer

    return "this machine" if get_deployer(target).hosts == "self" else target


@dataclass(frozen=True)
class Volume:
    """Traffic measured for one model over a window."""

    tokens_per_day: float
    output_share: float
    days: float  # how long the measurement covers
    requests: int

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Advice:
    model: str  # the deployment name clients use
    deployment_id: str
    job_id: str | None
    volume: Volume
    current: str
    current_usd_month: float | None
    best: str | None = None
    best_usd_month: float | None = None
    command: str | None = None
    cheaper: bool = False
    message: str = ""

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "volume": self.volume.to_json()}


def measured(
    store: ServeStore, deployment_ids: list[str], window_days: float, now: float | None = None
) -> Volume | None:
    """Tokens/day over the window (or since the first request, if that is later)."""
    now = time.time() if now is None else now
    rows = [
        r
        for r in store.usage(since=now - window_days * 86_400, deployment_ids=deployment_ids)
        if r.status < 400 and r.arm != "shadow"  # a shadow copy costs, but is no one's demand
    ]
    if not rows:
        return None
    prompt = sum(r.prompt_tokens for r in rows)
    completion = sum(r.completion_tokens for r in rows)
    days = max(now - rows[0].ts, 3600.0) / 86_400  # at least an hour, so one burst is not a day
    days = min(days, window_days)
    total = prompt + completion
    share = completion / total if total else 0.25
    return Volume(total / days, share, days, len(rows))


def job_report(job: JobRecord) -> DatasetReport:
    """The job's token statistics: recorded at launch, else its training file, else a default."""
    recorded = (job.estimate or {}).get("report") or {}
    if recorded.get("examples") and recorded.get("avg_tokens"):
        return DatasetReport(
            examples=int(recorded["examples"]),
            avg_tokens=float(recorded["avg_tokens"]),
            p95_tokens=recorded.get("p95_tokens"),
            source="journal",
        )
    train = (job.spec or {}).get("train")
    if train and Path(train).is_file():
        try:
            return quick_report(train, None)
        except TunegateError:
            pass
    return DatasetReport(examples=1000, avg_tokens=512.0, source="assumed")


def spec_at(job: JobRecord, volume: Volume | None, *, training_limits: bool = False) -> JobSpec:
    """The job's spec at the measured volume; without the constraints that only limit
    training (`max_usd`, `deadline_hours`) unless `training_limits`: the job is trained."""
    data = {k: v for k, v in (job.spec or {}).items() if not k.startswith("_")}
    spec = JobSpec.model_validate(_known(JobSpec, data))
    update: dict[str, Any] = {}
    if volume is not None:
        update["serving"] = spec.serving.model_copy(
            update={
                "tokens_per_day": round(volume.tokens_per_day),
                "output_share": volume.output_share,
            }
        )
    if not training_limits:
        update["constraints"] = spec.constraints.model_copy(
            update={"max_usd": None, "deadline_hours": None}
        )
    return spec.model_copy(update=update)


def _known(model: type, data: dict[str, Any]) -> dict[str, Any]:
    """Only the fields `model` declares, at every level (a resolved spec records more)."""
    out: dict[str, Any] = {}
    for name, field in model.model_fields.items():
        if name not in data:
            continue
        value, kind = data[name], field.annotation
        if isinstance(value, dict) and hasattr(kind, "model_fields"):
            value = _known(kind, value)
        out[name] = value
    return out


def _current_usd_month(
    dep: Deployment, journal: Journal, volume: Volume, catalog: Catalog
) -> float | None:
    price = price_of(dep, journal, catalog)
    if price.kind == "hourly":
        return price.usd_per_hour * HOURS_PER_MONTH
    if price.kind == "per_token":
        per_1m = (
            price.input_per_1m * (1 - volume.output_share)
            + price.output_per_1m * volume.output_share
        )
        return per_1m * volume.tokens_per_day / 1e6 * DAYS_PER_MONTH
    return None


def advise_one(
    dep: Deployment,
    journal: Journal,
    volume: Volume,
    *,
    threshold: float = THRESHOLD,
    catalog: Catalog | None = None,
) -> Advice:
    """Re-price `dep`'s model at `volume` on every route; advise a move worth `threshold`."""
    from gateway.facade.plan import plan

    catalog = catalog or load_catalog()
    price = price_of(dep, journal, catalog)
    current = _current_usd_month(dep, journal, volume, catalog)
    job = job_of(dep, journal)
    advice = Advice(dep.name, dep.id, job.id if job else None, volume, price.label, current)
    at = f"at the measured {human_count(volume.tokens_per_day)} tokens/day"
    idle = _idle_note(dep, volume, current, threshold, catalog)
    if job is None:
        advice.message = f"{at}, {dep.name} costs {_usd(current)}/month ({price.label}); no job recorded to re-price{idle}"
        return advice
    the_plan = plan(spec_at(job, volume), report=job_report(job), catalog=catalog)
    here = _route(dep.target)
    options = [
        o for o in the_plan.feasible if o.serve and _route(serving_target(o.provider)) != here
    ]
    if not options:
        advice.message = f"{at}, {dep.name} costs {_usd(current)}/month ({price.label}); no other route serves it"
        return advice
    best = min(options, key=lambda o: o.serve_usd_month.likely)
    advice.best, advice.best_usd_month = best.serve, best.serve_usd_month.likely
    target = serving_target(best.provider)
    advice.command = f"tunegate deploy {job.id} --to {target}"
    advice.cheaper = current is not None and advice.best_usd_month < current * (1 - threshold)
    if advice.cheaper:
        advice.message = (
            f"{at}, {best.serve} would cost {_usd(advice.best_usd_month)}/month instead of "
            f"{_usd(current)} ({price.label}); `{advice.command}`"
        )
    else:
        advice.message = (
            f"{at}, {dep.name} on {price.label} ({_usd(current)}/month) stays the cheapest within "
            f"{threshold:.0%}; next best: {best.serve} at {_usd(advice.best_usd_month)}/month"
        )
    advice.message += idle
    return advice


def _idle_note(
    dep: Deployment, volume: Volume, current: float | None, threshold: float, catalog: Catalog
) -> str:
    """For a fleet that stays on: what scaling to zero would save at the measured traffic,
    when the target can say and it is worth the threshold."""
    from exporters.deploy import get_deployer

    deployer = get_deployer(dep.target)
    if current is None or not hasattr(deployer, "scaled_to_zero_usd_month"):
        return ""
    idle = deployer.scaled_to_zero_usd_month(
        dep, volume.tokens_per_day, volume.output_share, catalog
    )
    if idle is None or idle >= current * (1 - threshold):
        return ""
    return (
        f"; scale to zero would save {human_usd(current - idle)}/month at your measured traffic "
        f"(`tunegate deploy {(dep.meta or {}).get('job') or dep.name} --to {dep.target} --scale-to-zero`)"
    )


def _usd(value: float | None) -> str:
    return "an unknown amount" if value is None else human_usd(value)


def advise(
    journal_path: Path | str | None = None,
    *,
    window_days: float = WINDOW_DAYS,
    threshold: float = THRESHOLD,
    catalog: Catalog | None = None,
) -> list[Advice]:
    """Advice for every live deployment with traffic in the window."""
    catalog = catalog or load_catalog()
    store = ServeStore(journal_path)
    out: list[Advice] = []
    try:
        with Journal(store.path) as journal:
            for dep in deployments(journal):
                volume = measured(store, [dep.id], window_days)
                if volume is None:
                    continue
                try:
                    out.append(
                        advise_one(dep, journal, volume, threshold=threshold, catalog=catalog)
                    )
                except TunegateError as exc:
                    out.append(
                        Advice(
                            dep.name,
                            dep.id,
                            None,
                            volume,
                            dep.target,
                            None,
                            message=f"cannot re-price {dep.name}: {exc.message}",
                        )
                    )
    finally:
        store.close()
    return out


def volume_for_job(
    job_id: str, journal_path: Path | str | None = None, *, window_days: float = WINDOW_DAYS
) -> Volume | None:
    """Measured traffic across every deployment of a job (what `tunegate plan JOB` uses)."""
    store = ServeStore(journal_path)
    try:
        with Journal(store.path) as journal:
            ids = [
                d.id
                for d in deployments(journal, all=True)
                if (j := job_of(d, journal)) is not None and j.id == job_id
            ]
        return measured(store, ids, window_days) if ids else None
    finally:
        store.close()


@dataclass
class JobPlan:
    """`tunegate plan JOB`: the job planned again, at measured volume when there is some."""

    plan: Any  # gateway.facade.plan.Plan
    job_id: str
    volume: Volume | None
    guessed_tokens_per_day: float
    advice: list[Advice]

    def to_json(self) -> dict[str, Any]:
        return {
            **self.plan.to_json(),
            "job": self.job_id,
            "measured": self.volume.to_json() if self.volume else None,
            "guessed_tokens_per_day": self.guessed_tokens_per_day,
            "advice": [a.to_json() for a in self.advice],
        }


def plan_job(
    ref: str,
    journal_path: Path | str | None = None,
    *,
    window_days: float = WINDOW_DAYS,
    threshold: float = THRESHOLD,
    catalog: Catalog | None = None,
    serving: dict[str, Any] | None = None,
) -> JobPlan:
    """Plan a journaled job again, with the serving volume its deployments measured (or
    `serving`: `serve`, `share_with`, `horizon_days`, `always_on` as `plan` takes them), beside
    the fleet it shares with the live members of its engine group at their measured volumes."""
    from gateway.facade.plan import plan
    from gateway.spec.job import option_patch

    catalog = catalog or load_catalog()
    with Journal(journal_path) as journal:
        job = journal.get(ref)
    volume = volume_for_job(job.id, journal_path, window_days=window_days)
    guessed = float(((job.spec or {}).get("serving") or {}).get("tokens_per_day") or 0.0)
    spec = spec_at(job, volume, training_limits=True)
    if serving:
        spec = spec.with_overrides(option_patch(serving))
    peers, source = None, "stated"
    if (serving or {}).get("share_with") is None:
        peers, source = group_peers(job.id, spec.serving.tokens_per_day, journal_path, window_days)
    the_plan = plan(spec, report=job_report(job), catalog=catalog, peers=peers, peers_source=source)
    advice = [
        a
        for a in advise(journal_path, window_days=window_days, threshold=threshold, catalog=catalog)
        if a.job_id == job.id
    ]
    return JobPlan(the_plan, job.id, volume, guessed, advice)


def group_peers(
    job_id: str, tokens_per_day: float, journal_path: Path | str | None, window_days: float
) -> tuple[list[float], str]:
    """The other fine-tunes live in the engine groups of this job's deployments, at the volume
    `tunegate serve` measured for each (this job's volume where it measured none)."""
    store = ServeStore(journal_path)
    try:
        with Journal(store.path) as journal:
            live = [d for d in deployments(journal) if d.state == "live"]
            groups = {
                d.meta["group"]
                for d in live
                if d.meta.get("group") and (j := job_of(d, journal)) is not None and j.id == job_id
            }
            others = [
                d
                for d in live
                if d.meta.get("group") in groups
                and d.meta.get("member") != "base"
                and ((j := job_of(d, journal)) is None or j.id != job_id)
            ]
        volumes, seen = [], 0
        for dep in others:
            got = measured(store, [dep.id], window_days)
            seen += got is not None
            volumes.append(got.tokens_per_day if got is not None else float(tokens_per_day))
    finally:
        store.close()
    if not others:
        return [], "stated"
    return volumes, f"{seen} of {len(others)} sharing fine-tunes measured by tunegate serve"
