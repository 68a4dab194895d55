"""What a user may name as the thing to export or deploy, resolved once for every command.

A source is a job id (or unique prefix), an artifact id, an `Artifact`, or a path: a GGUF
file, an export folder, a PEFT adapter folder or a merged model folder. `tg.export` and
`tg.deploy` take the same sources because both resolve them here.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from exporters.deploy.base import DeploySource, Wants
from exporters.mlx import is_mlx
from gateway.errors import DeployError, JournalError
from gateway.journal import JobRecord, Journal

AUTO_QUANT = "q4_k_m"  # what deploying a job to a GGUF target exports, as Ollama users run
AUTO_MLX = "q4"  # what deploying a job to --to mlx exports, as mlx-community publishes models


def _job(ref: str, journal: Journal) -> JobRecord | None:
    try:
        return journal.get(ref)
    except JournalError:
        return None


def _artifact_row(ref: str, journal: Journal) -> dict[str, Any] | None:
    return next((a for a in journal.artifacts() if a["id"] == ref), None)


def for_export(source: Any, journal: Journal | None = None) -> Any:
    """An `Artifact` or a path for `exporters.api.export`: a job id becomes the job's fetched
    artifact, an artifact id its journaled location; anything else passes through."""
    from gateway.job_types import Artifact
    from gateway.jobs import Job

    uri = getattr(source, "uri", None)
    if uri or Path(str(source)).expanduser().exists():
        return source
    journal = journal or Journal()
    row = _artifact_row(str(source), journal)
    if row is not None:
        return Artifact.from_row(row)
    return Job(str(source), journal).artifact()


def gate_of(what: Any, journal: Journal | None = None, **options: Any) -> Any:
    """The task-eval gate for exporting `what` (see `gateway.evaluate.gate.gate_for`): its
    job's `eval:` with `options` on top; None when neither asks for one."""
    from gateway.evaluate.gate import gate_for

    job_id = getattr(what, "job_id", None)
    job = None
    if job_id:
        job = _job(job_id, journal or Journal())
    return gate_for(job, **options)


def for_deploy(
    source: Any, wants: Wants, journal: Journal, *, progress: bool = False
) -> DeploySource:
    """Resolve `source` into what a target that `wants` it deploys."""
    ref = str(getattr(source, "id", None) or source)
    uri, job_id = getattr(source, "uri", None), getattr(source, "job_id", None)
    path = Path(uri) if uri else Path(str(source)).expanduser()
    job = _job(job_id, journal) if job_id else None
    art_id = getattr(source, "id", None) or None
    if art_id and _artifact_row(art_id, journal) is None:
        art_id = None  # an Artifact not from this journal: deploy its files, link nothing
    if not uri and not path.exists():
        row = _artifact_row(str(source), journal)
        if row is not None:
            path, art_id, job = Path(row["uri"]), row["id"], _job(row["job_id"], journal)
        else:
            job = _job(str(source), journal)
            if job is None:
                raise DeployError(
                    f"'{source}' is not a GGUF file, an export folder, a weights folder, an artifact or a job",
                    fix="give a job id (`tunegate jobs`), or the path of an export",
                )
            path = None  # type: ignore[assignment]
    fetch = _fetcher(job, journal) if job is not None else None
    src = DeploySource(ref, job, path.resolve() if path else None, art_id, fetch=fetch)
    if wants == "gguf":
        return _gguf(src, journal, progress)
    if wants == "merged":
        return _merged(src, journal, progress)
    if wants == "mlx":
        return _mlx(src, journal, progress)
    return src


def _export(what: Any, to: str, journal: Journal, progress: bool, quant: str | None = None) -> Any:
    """What a deploy exports first: verified, and held to the job's task eval like any export."""
    from exporters.api import export

    gate = gate_of(what, journal)
    return export(what, to, quant=quant, journal=journal, progress=progress, gate=gate)


def _fetcher(job: JobRecord, journal: Journal) -> Any:
    def fetch() -> Any:
        from gateway.jobs import Job

        return Job(job.id, journal).artifact()

    return fetch


def _gguf(src: DeploySource, journal: Journal, progress: bool) -> DeploySource:
    """The one model GGUF of a file, an export folder, an artifact or a job; a job without a
    GGUF export is exported first (AUTO_QUANT, verified)."""
    path, art_id, job = src.path, src.artifact_id, src.job
    if path is None and job is not None:
        rows = [a for a in journal.artifacts(job.id) if a["kind"] == "gguf"]
        if not rows:
            result = _export(for_export(job.id, journal), "gguf", journal, progress, AUTO_QUANT)
            gguf = result.files[0]
            return replace(
                src,
                path=gguf,
                artifact_id=result.artifact_id,
                sha256=_sha(result.artifact_id, gguf, journal),
            )
        path, art_id = Path(rows[-1]["uri"]), rows[-1]["id"]
    assert path is not None
    if path.is_file() and path.suffix == ".gguf":
        files = [path]
    else:
        files = (
            sorted(p for p in path.glob("*.gguf") if "adapter" not in p.name)
            if path.is_dir()
            else []
        )
    if len(files) != 1:
        raise DeployError(
            f"{path} holds {len(files)} model GGUF files; deploy needs exactly one",
            fix="name the .gguf file itself, or export first: tunegate export ID --to gguf",
        )
    gguf = files[0].resolve()
    return replace(src, path=gguf, artifact_id=art_id, sha256=_sha(art_id, gguf, journal))


def _sha(art_id: str | None, path: Path, journal: Journal) -> str | None:
    """The hash an export recorded for exactly this file, so it need not be read again."""
    row = _artifact_row(art_id, journal) if art_id else None
    return row["sha256"] if row and Path(row["uri"]) == Path(path) else None


def _merged(src: DeploySource, journal: Journal, progress: bool) -> DeploySource:
    """A merged HF folder: the source itself, or the adapter merged (and verified) first."""
    path = src.path
    weights = path is not None and (path / "config.json").is_file()
    if weights and not (path / "adapter_config.json").exists():  # type: ignore[operator]
        return src
    what = path if path is not None else for_export(src.job.id, journal)  # type: ignore[union-attr]
    result = _export(what, "merged", journal, progress)
    return replace(src, path=Path(result.path), artifact_id=result.artifact_id)


def _mlx(src: DeploySource, journal: Journal, progress: bool) -> DeploySource:
    """An MLX folder: the source itself, a job's MLX export, or the adapter, merged folder or
    job exported to MLX first (AUTO_MLX, verified)."""
    path, job = src.path, src.job
    if path is not None and path.is_dir() and is_mlx(path):
        return src
    if path is None and job is not None:
        rows = [a for a in journal.artifacts(job.id) if a["kind"] == "mlx"]
        if rows:
            return replace(src, path=Path(rows[-1]["uri"]), artifact_id=rows[-1]["id"])
    what = path if path is not None else for_export(job.id, journal)  # type: ignore[union-attr]
    result = _export(what, "mlx", journal, progress, AUTO_MLX)
    return replace(src, path=Path(result.path), artifact_id=result.artifact_id)
