"""Evaluation as users call it: targets named as users name them (paths, jobs, deployments,
URL#MODEL) are resolved once (`gateway.facade.sources.resolve_target`) and handed to
`gateway.evaluate`, which works on resolved targets only.

`eval:` in a job file runs once the job has succeeded: the task eval of the job's model
against its base on the held-out data (the job's validation file unless `eval.data` names
another), with the contamination check against the training file first, then the lm-eval
regression when `eval.suite` names one. Reports are stored with the job and journaled, so
`tunegate jobs` and `status` show the verdict.

`tunegate train --wait` and `resume --wait` run it as soon as the job succeeds;
`tunegate eval JOB` (no `--data`) runs it again on demand. An eval that cannot run never
changes the job's state: the reason is journaled as an event and returned.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gateway.errors import JobError, SpecError, TunegateError
from gateway.evaluate.generate import Target
from gateway.facade.sources import resolve_target
from gateway.journal import Journal
from gateway.spec import EvalConfig

Named = str | Path | Target  # what a user names, or a target resolved already


def _target(ref: Named | None) -> Target | None:
    if ref is None or isinstance(ref, Target):
        return ref
    return resolve_target(str(ref))


def task_eval(target: Named, data: Path, *, against: Named | None = None,
              judge: Named | None = None, **options: Any) -> Any:  # fmt: skip
    """`tunegate eval TARGET --data FILE`: the task eval of `target` against its base (or
    `against`), options as `gateway.evaluate.task.task_eval` takes them."""
    from gateway.evaluate import task

    tuned = _target(target)
    assert tuned is not None
    return task.task_eval(tuned, data, against=_target(against), judge=_target(judge), **options)


def regress(target: Named, *, against: Named | None = None, **options: Any) -> Any:
    """`tunegate eval regress TARGET`: lm-eval on base and tuned, paired per example."""
    from gateway.evaluate import regress as lm

    tuned = _target(target)
    assert tuned is not None
    return lm.regress(tuned, against=_target(against), **options)


def compare(a: Named, b: Named, data: Path, *, judge: Named | None = None, **options: Any) -> Any:
    """`tunegate eval compare A B`: both answer the same examples; judge and/or scorers."""
    from gateway.evaluate import compare as cmp

    ta, tb = _target(a), _target(b)
    assert ta is not None and tb is not None
    return cmp.compare(ta, tb, data, judge=_target(judge), **options)


@dataclass
class JobEval:
    """What ran after a job: its reports, or why nothing could run."""

    job_id: str
    reports: list[Any] = field(default_factory=list)
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "job_id": self.job_id,
            "reports": [r.to_json() for r in self.reports],
            "error": self.error,
        }


def eval_config(spec: dict[str, Any]) -> EvalConfig | None:
    """A journaled spec's `eval:` section, validated (None when the job has none)."""
    raw = spec.get("eval")
    return None if raw is None else EvalConfig.model_validate(raw)


def evaluate_job(job_id: str, *, journal: Journal | None = None, progress: bool = False) -> JobEval:
    """Run a succeeded job's configured eval now; raises when it cannot."""
    journal = journal or Journal()
    rec = journal.get(job_id)
    if rec.state != "succeeded":
        raise JobError(f"job {rec.id} is {rec.state}; only a succeeded job is evaluated")
    cfg = eval_config(rec.spec)
    if cfg is None:
        raise SpecError(
            f"job {rec.id} has no `eval:` in its job file",
            fix=f"tunegate eval {rec.id} --data HELDOUT.jsonl [--scorer exact|regex|json|tool]",
        )
    data = cfg.data or rec.spec.get("validation")
    if not data:
        raise SpecError(
            f"job {rec.id}: `eval:` names no data and the job has no validation file",
            fix="add `data: heldout.jsonl` under `eval:` in the job file",
        )
    train = rec.spec.get("train")
    train_path = Path(train) if train and Path(train).is_file() else None
    out = JobEval(rec.id)
    journal.add_event(rec.id, "eval", f"task eval on {Path(data).name} ({cfg.scorer}) started")
    report = task_eval(
        rec.id,
        Path(data),
        scorer=cfg.scorer,
        pattern=cfg.pattern,
        schema=cfg.json_schema,
        limit=cfg.limit,
        max_tokens=cfg.max_tokens,
        train=train_path,
        progress=progress,
    )
    out.reports.append(report)
    s = report.stats
    journal.add_event(
        rec.id,
        "eval",
        f"task eval: {s.verdict} ({s.base:.1f} -> {s.tuned:.1f}, {s.delta:+.1f} points, "
        f"95% CI [{s.ci_low:+.1f}, {s.ci_high:+.1f}]): {report.path}",
        data={"report": report.id, "verdict": s.verdict},
    )
    if cfg.suite:
        reg = regress(rec.id, suite=cfg.suite, limit=cfg.limit)
        out.reports.append(reg)
        worst = ", ".join(f"{k} {v['verdict']}" for k, v in reg.tasks.items())
        journal.add_event(rec.id, "eval", f"regression ({cfg.suite}): {worst}: {reg.path}")
    return out


def after_training(
    job_id: str, *, journal: Journal | None = None, progress: bool = False
) -> JobEval | None:
    """The job's eval, once: None when it has no `eval:`, is not a success, or was evaluated
    already; what could not run is journaled and returned, never raised."""
    journal = journal or Journal()
    rec = journal.get(job_id)
    if rec.state != "succeeded" or rec.spec.get("eval") is None:
        return None
    if any(row["kind"] == "task" for row in journal.evals(rec.id)):
        return None
    if progress:
        print("evaluating against the base (`eval:` in the job file)...", file=sys.stderr)
    try:
        return evaluate_job(rec.id, journal=journal, progress=progress)
    except (TunegateError, ImportError, OSError, RuntimeError, ValueError) as exc:
        # the job succeeded and stays so; the reason is kept where `status` shows it
        message = f"eval could not run: {exc}"
        journal.add_event(rec.id, "eval", message, data={"level": "error"})
        return JobEval(rec.id, error=message)
