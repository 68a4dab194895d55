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
              judge: Named | None = None, serve: str | None = None,
              base_model: str | None = None, **options: Any) -> Any:  # fmt: skip
    """`tunegate eval TARGET --data FILE`: the task eval of `target` against its base (or
    `against`), options as `gateway.evaluate.task.task_eval` takes them. With `baselines`,
    each arm is priced at the job's volume (a job's target), or at `serve` tokens/day for
    `base_model` (default: the adapter's base)."""
    from gateway.evaluate import task

    tuned = _target(target)
    price, base = None, base_model
    if options.get("baselines"):
        from gateway.facade.prompt_cost import pricer

        if options.get("train") is None and tuned.job_id:
            options["train"] = _job_train(tuned.job_id)

        price, base = pricer(tuned, serve=serve, base_model=base_model, train=options.get("train"))
    return task.task_eval(
        tuned,
        data,
        against=_optional(against),
        judge=_optional(judge),
        price=price,
        base_model=base,
        **options,
    )


def _job_train(job_id: str) -> Path | None:
    """A job's training file, where few-shot examples are drawn from (None if it is gone)."""
    from gateway.journal import Journal

    with Journal() as journal:
        train = journal.get(job_id).spec.get("train")
    return Path(train) if train and Path(train).is_file() else None


def regress(target: Named, *, against: Named | None = None, **options: Any) -> Any:
    """`tunegate eval regress TARGET`: lm-eval on base and tuned, paired per example."""
    from gateway.evaluate import regress as lm

    return lm.regress(_target(target), against=_optional(against), **options)


def compare(a: Named, b: Named, data: Path, *, judge: Named | None = None, **options: Any) -> Any:
    """`tunegate eval compare A B`: both answer the same examples; judge and/or scorers."""
    from gateway.evaluate import compare as cmp

    return cmp.compare(_target(a), _target(b), data, judge=_optional(judge), **options)
