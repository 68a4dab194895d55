"""Rules over resolved targets (`gateway.evaluate.generate.Target`): the default base of a
tuned model, and base and tuned on one backend (evaluation.md 1.5: numbers across backends are
not comparable). What a user names is resolved into a `Target` by the facade
(`gateway.facade.sources.resolve_target`), never here: evaluation sits below the facade.
"""

from __future__ import annotations

from gateway.errors import SpecError
from gateway.evaluate.generate import Target


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
