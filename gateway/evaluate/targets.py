"""What `tunegate eval` generates with: a target resolved to one backend that answers chat
messages greedily. Base and tuned must resolve to the same backend (evaluation.md 1.5: numbers
across backends are not comparable), so the backend is part of each target's description.

| target | backend |
|---|---|
| an adapter folder, or a job (its adapter) | `hf` in-process transformers + PEFT; its base: the same without the adapter |
| a merged / HF model folder | `hf` |
| a `.gguf` file | `llama.cpp` (llama-cpp-python's server, started here on a free port) |
| an MLX export folder | `mlx` (mlx_lm.server, started here) |
| a deployment name or id | `serve:TARGET`, through `tunegate serve` on loopback |
| `http://HOST:PORT/v1#MODEL` | `openai-compatible` |
"""

from __future__ import annotations

from pathlib import Path

from gateway.errors import SpecError, TunegateError
from gateway.evaluate.generate import Target


def resolve(ref: str) -> Target:
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
        return Target(ref, "llama.cpp", "gguf", path=path.resolve())
    if path.is_dir():
        if (path / "adapter_config.json").is_file():
            from exporters.adapter import adapter_config
            from gateway.models import resolve_model

            base = adapter_config(path).get("base_model_name_or_path")
            if not base:
                raise SpecError(
                    f"{path}: the adapter does not say which base model it was trained on",
                    fix="evaluate the merged export instead (tunegate export --to merged)",
                )
            return Target(ref, "hf", "hf", path=resolve_model(str(base)), adapter=path.resolve())
        from exporters.mlx import is_mlx

        if is_mlx(path):
            return Target(ref, "mlx", "mlx", path=path.resolve())
        if (path / "config.json").is_file():
            return Target(ref, "hf", "hf", path=path.resolve())
    from gateway.deploy_journal import get_deployment
    from gateway.journal import Journal

    with Journal() as journal:
        try:
            dep = get_deployment(ref, journal)
            from gateway.serve import running

            return Target(ref, f"serve:{dep.target}", "deployment", model=dep.name, opener=running)
        except TunegateError:
            pass
        try:
            job = journal.get(ref)
        except TunegateError:
            job = None
    if job is not None:
        from gateway.jobs import Job

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


def base_of(tuned: Target) -> Target:
    """The default `--against`: an adapter's base through the same in-process backend."""
    if tuned.kind == "hf" and tuned.adapter is not None:
        return Target(str(tuned.path), "hf", "hf", path=tuned.path)
    raise SpecError(
        f"{tuned.ref} ({tuned.backend}) has no base tunegate can run the same way",
        fix="name it with --against (e.g. the base exported the same way: a GGUF for a GGUF)",
    )


def require_same_backend(tuned: Target, base: Target) -> None:
    """Refuse a base and a tuned model on different backends: their scores are not comparable
    (evaluation.md 1.5), in the task eval and the regression alike."""
    if base.backend != tuned.backend:
        raise SpecError(
            f"the base runs on {base.backend} and the tuned model on {tuned.backend}: scores across "
            "backends are not comparable",
            fix="compare like with like (a GGUF with a GGUF, an adapter with its base)",
        )
