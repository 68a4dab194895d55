"""What a user names, resolved once for every command: export, deploy and eval.

A source is a job id (or unique prefix), an artifact id, an `Artifact`, or a path: a GGUF
file, an export folder, a PEFT adapter folder or a merged model folder. `tg.export` and
`tg.deploy` take the same sources because both resolve them here. An eval target
(`resolve_target`) may also be a deployment or an OpenAI-compatible `URL#MODEL`:

| target | backend the eval generates with |
|---|---|
| an adapter folder, or a job (its adapter) | `hf` in-process transformers + PEFT; its base: the same without the adapter |
| a merged / HF model folder | `hf` |
| a `.gguf` file | `llama.cpp` (llama-cpp-python's server, started on a free port) |
| an MLX export folder | `mlx` (mlx_lm.server, started on a free port) |
| a deployment name or id | `deployment:TARGET`, reached as its deployer says (`Deployer.upstream`) |
| `http://HOST:PORT/v1#MODEL` | `openai-compatible` |
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from exporters.deploy.base import DeploySource, Wants
from exporters.formats import GGUF, MLX
from exporters.mlx import is_mlx
from gateway.errors import DeployError, JournalError, SpecError, TunegateError
from gateway.evaluate.generate import Target, export_target
from gateway.journal import JobRecord, Journal
from gateway.journal.deployments import Deployment

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
    """An `Artifact` or a path for `exporters.pipeline.export`: a job id becomes the job's fetched
    artifact, an artifact id its journaled location; anything else passes through."""
    from gateway.facade.jobs import Job
    from gateway.journal.records import Artifact

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
    from exporters.pipeline import export

    gate = gate_of(what, journal)
    return export(what, to, quant=quant, journal=journal, progress=progress, gate=gate)


def _fetcher(job: JobRecord, journal: Journal) -> Any:
    def fetch() -> Any:
        from gateway.facade.jobs import Job

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


def resolve_target(ref: str) -> Target:
    """A target from what the user named (see the module table); a job's model, or a file in
    a job's folder, carries the job id so its reports are stored with the job."""
    target = _resolve(ref)
    if target.job_id is None:
        target.job_id = _job_of(target.adapter or target.path)
    return target


def _job_of(path: Path | None) -> str | None:
    """The journaled job whose folder holds `path` (an adapter, an export), if any."""
    from gateway.catalog import tunegate_home

    if path is None:
        return None
    try:
        rel = path.resolve().relative_to((tunegate_home() / "jobs").resolve())
    except ValueError:
        return None
    if not rel.parts:
        return None
    from gateway.journal import Journal

    with Journal() as journal:
        try:
            return journal.get(rel.parts[0]).id
        except TunegateError:
            return None


def _resolve(ref: str) -> Target:
    if ref.startswith(("http://", "https://")):
        url, _, model = ref.partition("#")
        if not model:
            raise SpecError(
                f"an endpoint target names its model: {ref}#MODEL",
                fix="e.g. http://127.0.0.1:8080/v1#my-model",
            )
        return Target(ref, "openai-compatible", "endpoint", url=url.rstrip("/"), model=model)
    path = Path(ref).expanduser()
    if path.is_file() and path.suffix == ".gguf":
        return export_target(ref, GGUF, path)
    if path.is_dir():
        if (path / "adapter_config.json").is_file():
            from exporters.adapter import adapter_config
            from gateway.catalog.models import resolve_model

            base = adapter_config(path).get("base_model_name_or_path")
            if not base:
                raise SpecError(
                    f"{path}: the adapter does not say which base model it was trained on",
                    fix="evaluate the merged export instead (tunegate export --to merged)",
                )
            return Target(ref, "hf", "hf", path=resolve_model(str(base)), adapter=path.resolve())
        if is_mlx(path):
            return export_target(ref, MLX, path)
        if (path / "config.json").is_file():
            return Target(ref, "hf", "hf", path=path.resolve())
    from gateway.journal import Journal
    from gateway.journal.deployments import get_deployment

    with Journal() as journal:
        try:
            return deployment_target(ref, get_deployment(ref, journal))
        except TunegateError:
            pass
        try:
            job = journal.get(ref)
        except TunegateError:
            job = None
    if job is not None:
        from gateway.facade.jobs import Job

        art = Job(job.id).artifact()
        if not Path(str(art.uri)).exists():
            raise SpecError(
                f"job {job.id} ran on {job.provider}: its model ({art.uri}) is served there, "
                "not a file tunegate can load",
                fix=f"tunegate deploy {job.id} --to {job.provider}, then tunegate eval "
                "DEPLOYMENT --against a deployment of the base",
            )
        found = _resolve(str(art.uri))
        found.job_id = job.id
        return found
    raise SpecError(
        f"'{ref}' is not a model folder, adapter, GGUF, MLX folder, deployment, job or endpoint",
        fix="give a path, a deployment name (`tunegate deployments`), a job id, or URL#MODEL",
    )


def deployment_target(ref: str, dep: Deployment) -> Target:
    """A deployment as an eval target, reached the way its deployer says (`upstream`): an
    OpenAI-compatible URL with its headers, an engine started here for the eval, or only the
    target's own `chat` (then it answers, but cannot judge)."""
    from exporters.deploy import get_deployer
    from gateway.evaluate.generate import upstream_url

    deployer = get_deployer(dep.target)
    upstream = deployer.upstream(dep)
    backend = f"deployment:{dep.target}"
    if upstream.kind == "http":
        url = upstream.base_url.rstrip("/")
        return Target(ref, backend, "deployment", url=url, model=upstream.model,
                      headers=dict(upstream.headers))  # fmt: skip
    if upstream.kind == "engine":
        return Target(ref, backend, "deployment", model=upstream.model,
                      opener=lambda: upstream_url(dep, upstream))  # fmt: skip
    return Target(ref, backend, "deployment", model=dep.name,
                  chat=lambda messages, n: deployer.chat(dep, messages, n).text)  # fmt: skip
