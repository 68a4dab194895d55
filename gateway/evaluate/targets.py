"""Rules over resolved targets (`gateway.evaluate.generate.Target`): the default base of a
tuned model, and base and tuned on one backend (evaluation.md 1.5: numbers across backends are
not comparable). What a user names is resolved into a `Target` by the facade
(`gateway.facade.sources.resolve_target`), never here: evaluation sits below the facade.
"""

from __future__ import annotations

from pathlib import Path

from exporters.formats import GGUF, MLX
from gateway.errors import SpecError
from gateway.evaluate.generate import Target, export_target


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


def target_of(ref: str) -> Target | None:
    """What is at a path, or behind `URL#MODEL`, as a target (see `gateway.facade.sources`);
    None for anything else (a deployment or job name: the facade resolves those)."""
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
        from exporters.mlx import is_mlx

        if is_mlx(path):
            return export_target(ref, MLX, path)
        if (path / "config.json").is_file():
            return Target(ref, "hf", "hf", path=path.resolve())
    return None


def job_target(job_id: str, uri: str) -> Target:
    """A job's fetched model (its adapter folder, or merged weights) as a target that carries
    the job id, so reports are stored with the job."""
    found = target_of(uri)
    if found is None:
        raise SpecError(f"job {job_id}: its model at {uri} is not a folder tunegate can load")
    found.job_id = job_id
    return found
