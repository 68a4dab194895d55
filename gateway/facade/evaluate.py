"""Evaluation as users call it: targets named as users name them (paths, jobs, deployments,
URL#MODEL) are resolved once (`gateway.facade.sources.resolve_target`) and handed to
`gateway.evaluate`, which works on resolved targets only.
A job's own `eval:` (after training) is `gateway.facade.jobs.evaluate_job`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gateway.evaluate.generate import Target
from gateway.facade.sources import resolve_target

Named = str | Path | Target  # what a user names, or a target resolved already


def _target(ref: Named) -> Target:
    return ref if isinstance(ref, Target) else resolve_target(str(ref))


def _optional(ref: Named | None) -> Target | None:
    return None if ref is None else _target(ref)


def task_eval(target: Named, data: Path, *, against: Named | None = None,
              judge: Named | None = None, **options: Any) -> Any:  # fmt: skip
    """`tunegate eval TARGET --data FILE`: the task eval of `target` against its base (or
    `against`), options as `gateway.evaluate.task.task_eval` takes them."""
    from gateway.evaluate import task

    return task.task_eval(
        _target(target), data, against=_optional(against), judge=_optional(judge), **options
    )


def regress(target: Named, *, against: Named | None = None, **options: Any) -> Any:
    """`tunegate eval regress TARGET`: lm-eval on base and tuned, paired per example."""
    from gateway.evaluate import regress as lm

    return lm.regress(_target(target), against=_optional(against), **options)


def compare(a: Named, b: Named, data: Path, *, judge: Named | None = None, **options: Any) -> Any:
    """`tunegate eval compare A B`: both answer the same examples; judge and/or scorers."""
    from gateway.evaluate import compare as cmp

    return cmp.compare(_target(a), _target(b), data, judge=_optional(judge), **options)
