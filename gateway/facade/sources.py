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

from pathlib import Path
from typing import Any

from exporters.deploy.base import DeploySource
from gateway.errors import DeployError, JournalError, SpecError, TunegateError
from gateway.evaluate.generate import Target
from gateway.evaluate.targets import job_target, target_of
from gateway.journal import JobRecord, Journal
from gateway.journal.deployments import Deployment


def job_named(ref: str | None, journal: Journal) -> JobRecord | None:
    """The journaled job `ref` names (id or unique prefix), or None."""
    if not ref:
        return None
    try:
        return journal.get(ref)
    except JournalError:
        return None


def for_export(source: Any, journal: Journal | None = None) -> Any:
    """An `Artifact` or a path for `exporters.pipeline.export`: a job id becomes the job's fetched
    artifact, an artifact id its journaled location; anything else passes through."""
    from gateway.facade.jobs import Job
    from gateway.journal.records import Artifact

    uri = getattr(source, "uri", None)
    if uri or Path(str(source)).expanduser().exists():
        return source
    journal = journal or Journal()
    row = journal.artifact(str(source))
    if row is not None:
        return Artifact.from_row(row)
    return Job(str(source), journal).artifact()


def gate_of(what: Any, journal: Journal | None = None, **options: Any) -> Any:
    """The task-eval gate for exporting `what` (see `gateway.evaluate.gate.gate_for`): its
    job's `eval:` with `options` on top; None when neither asks for one."""
    from gateway.evaluate.gate import gate_for

    job_id = getattr(what, "job_id", None)
    return gate_for(job_named(job_id, journal or Journal()), **options)


def for_deploy(source: Any, journal: Journal) -> DeploySource:
    """Resolve `source` (a job id, artifact id, `Artifact`, GGUF file or export folder) into
    a `DeploySource`; `gateway.facade.deploy` then exports what the target wants, if needed."""
    ref = str(getattr(source, "id", None) or source)
    uri, job_id = getattr(source, "uri", None), getattr(source, "job_id", None)
    path = Path(uri) if uri else Path(str(source)).expanduser()
    job = job_named(job_id, journal)
    art_id = getattr(source, "id", None) or None
    if art_id and journal.artifact(art_id) is None:
        art_id = None  # an Artifact not from this journal: deploy its files, link nothing
    if not uri and not path.exists():
        row = journal.artifact(str(source))
        if row is not None:
            path, art_id, job = Path(row["uri"]), row["id"], job_named(row["job_id"], journal)
        else:
            job = job_named(str(source), journal)
            if job is None:
                raise DeployError(
                    f"'{source}' is not a GGUF file, an export folder, a weights folder, an artifact or a job",
                    fix="give a job id (`tunegate jobs`), or the path of an export",
                )
            path = None  # type: ignore[assignment]
    fetch = _fetcher(job, journal) if job is not None else None
    return DeploySource(ref, job, path.resolve() if path else None, art_id, fetch=fetch)


def _fetcher(job: JobRecord, journal: Journal) -> Any:
    def fetch() -> Any:
        from gateway.facade.jobs import Job

        return Job(job.id, journal).artifact()

    return fetch


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
    found = target_of(ref)  # a path or URL#MODEL
    if found is not None:
        return found
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
        return job_target(job.id, str(art.uri))
    raise SpecError(
        f"'{ref}' is not a model folder, adapter, GGUF, MLX folder, deployment, job or endpoint",
        fix="give a path, a deployment name (`tunegate deployments`), a job id, or URL#MODEL",
    )


def deployment_target(ref: str, dep: Deployment) -> Target:
    """A deployment as an eval target, reached the way its deployer says (`upstream`): an
    OpenAI-compatible URL with its headers, an engine started here for the eval, or only the
    target's own `chat` (then it answers, but cannot judge)."""
    from exporters.deploy import get_deployer
    from exporters.deploy.base import Shares
    from gateway.evaluate.generate import upstream_url

    deployer = get_deployer(dep.target)
    backend = f"deployment:{dep.target}"
    if isinstance(deployer, Shares) and dep.meta.get("group"):  # a member of a shared engine
        return Target(ref, backend, "deployment", model=dep.name,
                      chat=lambda messages, n: deployer.chat(dep, messages, n).text)  # fmt: skip
    upstream = deployer.upstream(dep)
    if upstream.kind == "http":
        url = upstream.base_url.rstrip("/")
        return Target(ref, backend, "deployment", url=url, model=upstream.model,
                      headers=dict(upstream.headers))  # fmt: skip
    if upstream.kind == "engine":
        return Target(ref, backend, "deployment", model=upstream.model,
                      opener=lambda: upstream_url(dep, upstream))  # fmt: skip
    return Target(ref, backend, "deployment", model=dep.name,
                  chat=lambda messages, n: deployer.chat(dep, messages, n).text)  # fmt: skip
