"""Layer 1, the regression: did the fine-tune break the base elsewhere? lm-evaluation-harness
(`simple_evaluate`) runs the same tasks on the base and the tuned model through one backend,
and each task's per-example scores are paired (evaluation.md section 1).

This version runs in-process models (an adapter with its base, or a model folder) through
lm-eval's `hf` backend, on the `quick` / `standard` suites or the user's own lm-eval YAML tasks.
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
from gateway.evaluate.reports import store
from gateway.evaluate.stats import paired
from gateway.evaluate.targets import Target, base_of, resolve

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
        lines += [f"- tuned: `{self.tuned['ref']}`, base: `{self.base['ref']}`, via lm-eval `hf`"]
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


def _model_args(t: Target) -> dict[str, Any]:
    if t.kind != "hf":
        raise SpecError(
            f"{t.ref} runs on {t.backend}; the regression runs in-process models in this version",
            fix="regress the adapter or merged folder, and check the export with the task eval "
            "(`tunegate eval GGUF --against BASE-GGUF --data FILE`)",
        )
    args: dict[str, Any] = {"pretrained": str(t.path), "dtype": "float32"}
    if t.adapter is not None:
        args["peft"] = str(t.adapter)
    return args


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


def _run(t: Target, tasks: dict[str, int | None], manager: Any, limit: int | None) -> dict:
    import lm_eval

    out: dict[str, Any] = {}
    for task, task_limit in tasks.items():  # one task at a time: each has its own limit
        chosen = limit if limit is not None else task_limit
        try:
            result = lm_eval.simple_evaluate(
                model="hf",
                model_args=_model_args(t),
                tasks=[task],
                task_manager=manager,
                device="cpu",
                batch_size=8,
                limit=chosen,
                log_samples=True,
                random_seed=0,
                numpy_random_seed=0,
                torch_random_seed=0,
            )
        except ConnectionError as exc:  # a dataset not in the cache, offline
            raise TunegateError(
                f"lm-eval could not load the data of {task}: {str(exc).splitlines()[0][:300]}",
                fix="`tunegate eval prefetch --suite SUITE` on a connected machine fills the "
                "Hugging Face cache",
            ) from None
        except (OSError, ValueError) as exc:
            raise TunegateError(
                f"lm-eval could not run {task} on {t.ref}: {str(exc).splitlines()[0][:300]}"
            ) from None
        for name, samples in (result.get("samples") or {}).items():
            out[name] = samples
    return out


def regress(
    target: str, *, against: str | None = None, suite: str = "quick", limit: int | None = None
) -> RegressReport:
    """lm-eval on the base and the tuned model, paired per example, task by task."""
    from gateway.extras import require

    require("lm_eval", what="tunegate eval regress")
    tuned = resolve(target)
    base = resolve(against) if against else base_of(tuned)
    _model_args(tuned), _model_args(base)  # both in-process, or a clear refusal now
    tasks, manager = _tasks(suite)
    got_base = _run(base, tasks, manager, limit)
    got_tuned = _run(tuned, tasks, manager, limit)
    report_tasks, notes = {}, []
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
        if st["verdict"] == "inconclusive":
            notes.append(f"{name}: inconclusive with {st['n']} examples; raise --limit")
    import lm_eval

    settings = {
        "backend": "lm-eval hf",
        "lm_eval": getattr(lm_eval, "__version__", "unknown"),
        "apply_chat_template": False,
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
    report.path = store(report.id, report.to_json(), report.to_markdown())
    return report


def prefetch(suite: str) -> list[str]:
    """Download a suite's datasets into the Hugging Face cache (the one online step)."""
    from gateway.extras import require

    require("lm_eval", what="tunegate eval prefetch")
    tasks, manager = _tasks(suite)
    from lm_eval.evaluator import get_task_dict

    get_task_dict(list(tasks), manager)
    return list(tasks)
