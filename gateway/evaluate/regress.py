"""Layer 1, the regression: did the fine-tune break the base elsewhere? lm-evaluation-harness
(`simple_evaluate`) runs the same tasks on the base and the tuned model through one backend,
and each task's per-example scores are paired (evaluation.md section 1).

Any target runs: in-process models through lm-eval's `hf` backend, a GGUF through llama-cpp-python's
server, MLX through mlx-lm, a deployment or endpoint through its chat API, where multiple choice
is asked as lettered questions (`lm_models.py`); on the `quick` / `standard` suites or the
user's own lm-eval YAML tasks.
The suites' datasets come from the Hugging Face cache (`tunegate eval prefetch` fills it); when
one is missing offline, the error says so instead of hanging. A backend that returns no prompt
log-probabilities would score multiple choice at chance silently: a run whose choices all get
the same score for every example is refused, not reported.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gateway.errors import SpecError, TunegateError
from gateway.evaluate.generate import Target
from gateway.evaluate.lm_models import Backend, canary, is_lettered, lettered, lm_for
from gateway.evaluate.reports import Delta, store
from gateway.evaluate.stats import paired
from gateway.evaluate.targets import base_of, require_same_backend

# evaluation.md section 6: quick = small limits for a smoke check; standard = full tasks
SUITES: dict[str, dict[str, int | None]] = {
    "quick": {"arc_easy": 200, "hellaswag": 200, "mmlu": 20, "gsm8k": 200},
    "standard": {"arc_challenge": None, "hellaswag": None, "mmlu": None, "gsm8k": None},
}
METRICS = ("acc", "exact_match", "acc_norm")  # the per-example score read, first found


@dataclass
class RegressReport:
    id: str
    suite: str
    tuned: dict[str, Any]
    base: dict[str, Any]
    tasks: dict[str, Any]  # task -> paired stats (with its metric)
    settings: dict[str, Any]
    notes: list[str] = field(default_factory=list)
    path: str | None = None

    def to_json(self) -> dict[str, Any]:
        return self.__dict__.copy()

    def to_markdown(self) -> str:
        lines = [f"# Regression {self.id} ({self.suite})", ""]
        lines += [
            f"- tuned: `{self.tuned['ref']}`, base: `{self.base['ref']}`, via {self.settings['backend']}"
        ]
        lines += [f"- settings: {json.dumps(self.settings)}", ""]
        lines += ["| task | metric | n | base | tuned | delta | 95% CI | verdict |"]
        lines += ["|---|---|---|---|---|---|---|---|"]
        for task, st in self.tasks.items():
            lines.append(
                f"| {task} | {st['metric']} | {st['n']} | {st['base']:.1f} | {st['tuned']:.1f} | "
                f"{st['delta']:+.1f} | [{st['ci_low']:+.1f}, {st['ci_high']:+.1f}] | "
                f"**{st['verdict']}** |"
            )
        lines += [f"> {n}" for n in self.notes]
        return "\n".join(lines) + "\n"


def _tasks(suite: str) -> tuple[dict[str, int | None], Any]:
    """(task -> limit, TaskManager) for a suite name or a YAML file / folder of tasks."""
    from lm_eval.tasks import TaskManager

    if suite in SUITES:
        return SUITES[suite], TaskManager()
    path = Path(suite)
    if not path.exists():
        raise SpecError(
            f"--suite {suite!r} is neither quick, standard nor a task file",
            fix="give quick, standard, or an lm-eval task YAML (or a folder of them)",
        )
    import yaml

    files = sorted(path.glob("*.yaml")) if path.is_dir() else [path]
    names = []
    for f in files:
        data = yaml.safe_load(f.read_text()) or {}
        if isinstance(data, dict) and data.get("task"):
            names.append(str(data["task"]))
    if not names:
        raise SpecError(f"{suite}: no lm-eval task (a YAML with `task:`) found")
    folder = path if path.is_dir() else path.parent
    return dict.fromkeys(names), TaskManager(include_path=str(folder), include_defaults=False)


def _scores(samples: list[dict[str, Any]]) -> tuple[str, dict[int, float]]:
    metric = next((m for m in METRICS if samples and m in samples[0]), None)
    if metric is None:
        raise TunegateError("lm-eval returned no per-example acc or exact_match to pair")
    return metric, {int(s["doc_id"]): float(s[metric]) for s in samples}


def _no_logprobs(samples: list[dict[str, Any]]) -> bool:
    """Every multiple-choice example scored all its choices the same: no real log-probs."""
    seen = False
    for s in samples:
        resps = s.get("filtered_resps") or []
        values = [r[0] if isinstance(r, list | tuple) else r for r in resps]
        if len(values) < 2 or not all(isinstance(v, int | float) for v in values):
            return False  # generative, or not the shape multiple choice has
        seen = True
        if len(set(values)) > 1:
            return False
    return seen


def _leaves(tasks: Any) -> dict[str, Any]:
    """The leaf tasks of lm-eval's task dict (groups such as mmlu nest their subjects)."""
    out: dict[str, Any] = {}
    for value in tasks.values():
        if isinstance(value, dict):
            out.update(_leaves(value))
        else:
            out[value.config.task] = value
    return out


def _load(task: str, manager: Any, backend: Backend) -> dict[str, Any]:
    from lm_eval.tasks import get_task_dict

    try:
        leaves = _leaves(get_task_dict([task], manager))
    except ConnectionError as exc:  # a dataset not in the cache, offline
        raise TunegateError(
            f"lm-eval could not load the data of {task}: {str(exc).splitlines()[0][:300]}",
            fix="`tunegate eval prefetch --suite SUITE` on a connected machine fills the "
            "Hugging Face cache",
        ) from None
    if backend.loglikelihood:
        return leaves
    return {
        name: lettered(t) if t.OUTPUT_TYPE == "multiple_choice" else t for name, t in leaves.items()
    }


def _run(
    t: Target, tasks: dict[str, int | None], manager: Any, limit: int | None
) -> tuple[dict[str, list[dict[str, Any]]], Backend, list[str]]:
    """Every task on one target, through one backend (loaded once); per-example samples."""
    import lm_eval

    out: dict[str, Any] = {}
    asked: list[str] = []  # multiple choice asked as lettered questions
    with lm_for(t) as (lm, backend):
        canary(lm, backend)
        for task, task_limit in tasks.items():  # one task at a time: each has its own limit
            leaves = _load(task, manager, backend)
            asked += [name for name, x in leaves.items() if is_lettered(x)]
            try:
                result = lm_eval.simple_evaluate(
                    model=lm,
                    tasks=list(leaves.values()),
                    task_manager=manager,
                    limit=limit if limit is not None else task_limit,
                    log_samples=True,
                    apply_chat_template=backend.chat_template,
                    random_seed=0,
                    numpy_random_seed=0,
                    torch_random_seed=0,
                )
            except (OSError, ValueError, RuntimeError) as exc:
                raise TunegateError(
                    f"lm-eval could not run {task} on {t.ref}: {str(exc).splitlines()[0][:300]}"
                ) from None
            out.update(result.get("samples") or {})
    return out, backend, asked


def regress(
    tuned: Target, *, against: Target | None = None, suite: str = "quick", limit: int | None = None
) -> RegressReport:
    """lm-eval on the base and the tuned model, paired per example, task by task (targets
    come resolved: `gateway.facade.sources.resolve_target`)."""
    from gateway.catalog.extras import require

    require("lm_eval", what="tunegate eval regress")
    base = against or base_of(tuned)
    require_same_backend(tuned, base)
    tasks, manager = _tasks(suite)
    got_base, backend, asked = _run(base, tasks, manager, limit)
    got_tuned, _, _ = _run(tuned, tasks, manager, limit)
    report_tasks, notes = {}, []
    if asked:
        notes.append(
            f"{backend.name} returns no prompt log-probabilities: multiple choice "
            f"({', '.join(sorted(asked))}) was asked as lettered questions, scored by the letter "
            "answered; not comparable to published numbers"
        )
    for name, samples in got_tuned.items():
        if _no_logprobs(samples) or _no_logprobs(got_base.get(name, [])):
            raise TunegateError(
                f"{name}: every choice got the same score: the backend returned no prompt "
                "log-probabilities, so multiple choice would read as chance",
                fix="use an in-process model, or a generative task",
            )
        metric, t_scores = _scores(samples)
        _, b_scores = _scores(got_base.get(name, []))
        ids = sorted(set(t_scores) & set(b_scores))
        st = paired([b_scores[i] for i in ids], [t_scores[i] for i in ids]).to_json()
        resps = {int(s["doc_id"]): s.get("filtered_resps") for s in got_base.get(name, [])}
        changed = sum(1 for s in samples if s.get("filtered_resps") != resps.get(int(s["doc_id"])))
        report_tasks[name] = {**st, "metric": metric, "changed": changed}
        unparsed = sum(float(s.get("unparsed", 0)) for s in samples)
        if unparsed:
            notes.append(
                f"{name}: the tuned model answered no letter on {unparsed:.0f} of {len(samples)}"
            )
        if st["verdict"] == "inconclusive":
            notes.append(f"{name}: inconclusive with {st['n']} examples; raise --limit")
    import lm_eval

    settings = {
        "backend": backend.name,
        "lm_eval": getattr(lm_eval, "__version__", "unknown"),
        "apply_chat_template": backend.chat_template,
        "multiple_choice": "log-likelihood" if backend.loglikelihood else "lettered, generative",
        "num_fewshot": "task default",
        "limit": limit,
    }
    report = RegressReport(
        "rg-" + uuid.uuid4().hex[:10],
        suite,
        tuned.to_json(),
        base.to_json(),
        report_tasks,
        settings,
        notes,
    )
    worst = min(report_tasks.values(), key=lambda st: st["ci_high"], default=None)
    report.path = store(
        report.id,
        report.to_json(),
        report.to_markdown(),
        kind="regress",
        target=tuned.ref,
        job_id=tuned.job_id,
        verdict=_overall([st["verdict"] for st in report_tasks.values()]),
        summary={"suite": suite, "tasks": report_tasks, "worst": worst},
        deltas=[Delta.of(name, st) for name, st in report_tasks.items()],
    )
    return report


def _overall(verdicts: list[str]) -> str:
    """A suite's verdict: its worst task's (fail over warn over inconclusive over ok)."""
    for worst in ("fail", "warn", "inconclusive", "ok", "improved"):
        if worst in verdicts:
            return worst
    return "inconclusive"


def prefetch(suite: str) -> list[str]:
    """Download a suite's datasets into the Hugging Face cache (the one online step)."""
    from gateway.catalog.extras import require

    require("lm_eval", what="tunegate eval prefetch")
    tasks, manager = _tasks(suite)
    from lm_eval.tasks import get_task_dict

    get_task_dict(list(tasks), manager)
    return list(tasks)
