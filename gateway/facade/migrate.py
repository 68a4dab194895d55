"""`tunegate migrate openai`: with the user's OpenAI key, list their fine-tuning jobs and files
through the official SDK, download each job's training file, and plan its open equivalents
(training, and serving at the volume the model serves today) in one table.

Downloads go to a folder of the user's choosing and never overwrite a file: an existing file
with the same bytes is reused, a different one gets a new name. Nothing is launched.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from gateway.errors import ProviderError, TunegateError
from gateway.util.retry import describe

SOURCE = "openai"  # the backend this migration moves fine-tunes off (its cut-off is in rules.yaml)


@dataclass
class Alternative:
    base: str
    route: str | None  # the cheapest feasible offer, or None with `reason`
    train_usd: float | None = None
    serve_usd_month: float | None = None
    total_usd: float | None = None
    reason: str | None = None


@dataclass
class MigratedJob:
    job_id: str
    status: str
    model: str  # the OpenAI base it was trained on
    fine_tuned_model: str | None
    training_file: str | None
    local_file: str | None  # where its training data was saved
    examples: int | None
    tokens_per_day: float  # measured through tunegate serve, else the guess given
    measured: bool
    alternatives: list[Alternative] = field(default_factory=list)
    note: str | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _save(folder: Path, name: str, data: bytes) -> Path:
    """`data` at `folder/name`, or beside it under a new name: never over a different file."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    n = 1
    while path.exists():
        if hashlib.sha256(path.read_bytes()).digest() == hashlib.sha256(data).digest():
            return path
        path = folder / f"{Path(name).stem}-{n}{Path(name).suffix}"
        n += 1
    path.write_bytes(data)
    return path


def _measured(fine_tuned: str | None) -> float | None:
    """Tokens/day measured by `tunegate serve` for deployments of this OpenAI model."""
    if not fine_tuned:
        return None
    from gateway.facade.advice import WINDOW_DAYS, measured
    from gateway.journal import Journal
    from gateway.journal.deployments import deployments
    from gateway.journal.serving import ServeStore

    with Journal() as journal:
        ids = [d.id for d in deployments(journal, all=True) if d.endpoint == fine_tuned]
    if not ids:
        return None
    with ServeStore() as store:
        volume = measured(store, ids, WINDOW_DAYS)
    return volume.tokens_per_day if volume else None


def _plan(base: str, train: Path, epochs: Any, tokens_per_day: float) -> Alternative:
    from gateway.facade.plan import plan
    from gateway.spec import JobSpec

    training = {"epochs": float(epochs)} if isinstance(epochs, int | float) else {}
    try:
        spec = JobSpec.model_validate(
            {
                "base_model": base,
                "train": train,
                "training": training,
                "serving": {"tokens_per_day": round(tokens_per_day)},
            }
        )
        result = plan(spec)
    except TunegateError as exc:
        return Alternative(base, None, reason=exc.message)
    best = next((o for o in result.offers if o.feasible), None)
    if best is None:
        reasons = "; ".join(f"{o.label}: {o.reason}" for o in result.offers[:3])
        return Alternative(base, None, reason=reasons or "no backend fits")
    return Alternative(
        base,
        best.label,
        best.train_usd.likely,
        best.serve_usd_month.likely,
        best.total_usd.likely,
    )


def migrate_openai(out: Path, *, tokens_per_day: float = 0.0) -> list[MigratedJob]:
    """Every fine-tuning job in the OpenAI account, its data saved under `out`, planned on the
    open alternatives the catalog lists for its base (rules.yaml `cutoffs.openai`)."""
    from gateway.catalog.extras import require

    require("openai", what="tunegate migrate openai")
    import openai

    from gateway.data.formats import load
    from gateway.util.secrets import require as require_key

    require_key("OPENAI_API_KEY", "openai")
    from gateway.catalog import load_catalog

    catalog = load_catalog()
    cutoff = catalog.rules.cutoffs.get("openai")
    client = openai.OpenAI(max_retries=2)
    rows: list[MigratedJob] = []
    try:
        jobs = list(client.fine_tuning.jobs.list(limit=100))
        for job in jobs:
            got = _measured(job.fine_tuned_model)
            row = MigratedJob(
                job.id,
                job.status,
                job.model,
                job.fine_tuned_model,
                job.training_file,
                None,
                None,
                got if got is not None else tokens_per_day,
                got is not None,
            )
            rows.append(row)
            if not job.training_file:
                row.note = "no training file recorded"
                continue
            info = client.files.retrieve(job.training_file)
            data = client.files.content(job.training_file).read()
            path = _save(out, f"{job.training_file}-{Path(info.filename).name}", data)
            row.local_file = str(path)
            row.examples = len(load(path).examples)
            try:
                model_id = catalog.model(job.model).id
            except TunegateError:
                model_id = job.model
            bases = (cutoff.alternatives.get(model_id) if cutoff else None) or []
            if not bases:
                row.note = f"no open alternative listed for {job.model} in rules.yaml cutoffs"
            epochs = getattr(job.hyperparameters, "n_epochs", None)
            row.alternatives = [_plan(b, path, epochs, row.tokens_per_day) for b in bases]
    except openai.APIError as exc:
        raise ProviderError(f"OpenAI: {describe(exc)}") from None
    return rows
