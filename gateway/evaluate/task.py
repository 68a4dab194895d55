"""Layer 2, the task eval: the tuned model and its base answer the same held-out examples through
the same backend; each answer is scored against the reference, and the paired delta is reported
with a bootstrap CI, McNemar's test, a verdict and the examples that flipped.

An example is a chat whose last assistant turn (its text, or its tool calls) is the reference;
everything before it is the prompt. Answers are cached by (target fingerprint, prompt, max
tokens) under `$TUNEGATE_HOME/eval/cache`, so scoring again never generates again. When the
training data is known (a job, or `--train`), the contamination check runs first.

Prompt baselines (`few-shot:K`, `system:FILE`, `gateway.evaluate.baselines`) are more arms on
the base: each is scored the same way and compared with the fine-tune as a paired delta, and
every arm's tokens per request are measured, so `price` (the facade's) can put what each costs
to serve beside its score.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from gateway.data.formats import load
from gateway.errors import SpecError
from gateway.evaluate.arms import ArmResult, Usage, arms_markdown, run_arms
from gateway.evaluate.baselines import Baseline
from gateway.evaluate.generate import Generator, Target, answers_with_usage, held_out, question_of
from gateway.evaluate.reports import Delta, cell, store
from gateway.evaluate.scorers import get_scorer
from gateway.evaluate.stats import Paired, paired
from gateway.evaluate.targets import base_of, require_same_backend

SHOWN_FLIPS = 10


@dataclass
class Row:
    line: int
    prompt: str  # the last user turn, for the report
    reference: str
    base: str
    tuned: str
    base_score: float
    tuned_score: float
    arms: dict[str, dict[str, Any]] = field(default_factory=dict)  # baseline -> answer, score


@dataclass
class TaskReport:
    id: str
    created_at: float
    data: str
    scorer: str
    tuned: dict[str, Any]
    base: dict[str, Any]
    max_tokens: int
    stats: Paired
    rows: list[Row]
    cached: int  # answers read from the cache
    contamination: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    path: str | None = None  # where the report was written
    arms: list[ArmResult] = field(default_factory=list)
    usage: dict[str, Usage] = field(default_factory=dict)  # base, tuned, each baseline
    cost: dict[str, Any] | None = None  # each arm's serving cost (`gateway.facade.prompt_cost`)
    base_model: str | None = None  # the catalog base (the job's), for the plan's prompt row

    def label(self) -> str:
        return f"{Path(self.data).name} ({self.scorer})"

    def summary(self) -> dict[str, Any]:
        """What the journal keeps of it: enough for `tunegate status` and the jobs table."""
        keep = ("n", "base", "tuned", "delta", "ci_low", "ci_high", "p_value", "verdict")
        out = {
            "data": self.data,
            "scorer": self.scorer,
            **{k: getattr(self.stats, k) for k in keep},
        }
        if self.arms:
            out["arms"] = [a.to_json() for a in self.arms]
            out["data_sha"] = data_sha(Path(self.data))
            out["base_model"] = self.base_model
        if self.usage:
            out["usage"] = {k: asdict(u) for k, u in self.usage.items()}
        if self.cost:
            out["cost"] = {k: self.cost.get(k) for k in ("arms", "payback", "sentences")}
        return out

    def flipped(self) -> list[Row]:
        return [r for r in self.rows if r.base_score != r.tuned_score]

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["stats"] = self.stats.to_json()
        out["arms"] = [a.to_json() for a in self.arms]
        out["flipped"] = [asdict(r) for r in self.flipped()]
        return out

    def to_markdown(self) -> str:
        s = self.stats
        p = "n/a" if s.p_value is None else f"{s.p_value:.3g}"
        lines = [
            f"# Task eval {self.id}",
            "",
            f"- data: `{self.data}` ({s.n} examples), scorer `{self.scorer}`, max {self.max_tokens} tokens",
            f"- tuned: `{self.tuned['ref']}` via {self.tuned['backend']}",
            f"- base: `{self.base['ref']}` via {self.base['backend']}",
            "",
            "| base | tuned | delta | 95% CI | McNemar p | verdict |",
            "|---|---|---|---|---|---|",
            f"| {s.base:.1f} | {s.tuned:.1f} | {s.delta:+.1f} | [{s.ci_low:+.1f}, {s.ci_high:+.1f}] "
            f"| {p} | **{s.verdict}** |",
            "",
        ]
        if s.verdict == "inconclusive":
            lines += ["The interval spans the 3-point threshold: raise --limit for a verdict.", ""]
        lines += arms_markdown(self)
        for note in self.notes:
            lines.append(f"> {note}")
        if self.contamination:
            lines += [
                "",
                f"**{len(self.contamination)} eval examples share text with the training data.**",
            ]
        flips = self.flipped()
        if flips:
            lines += [
                "",
                "## Flipped examples",
                "",
                "| line | prompt | reference | base | tuned |",
                "|---|---|---|---|---|",
            ]
            for r in flips[:SHOWN_FLIPS]:
                cells = [cell(x) for x in (r.prompt, r.reference, r.base, r.tuned)]
                lines.append(f"| {r.line} | " + " | ".join(cells) + " |")
        return "\n".join(lines) + "\n"


def data_sha(path: Path) -> str | None:
    """The eval data's content hash: the plan matches a measured prompt arm by it."""
    import hashlib

    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()[:16]
    except OSError:
        return None


def task_eval(
    tuned: Target,
    data: Path,
    *,
    against: Target | None = None,
    scorer: str = "exact",
    pattern: str | None = None,
    schema: Path | dict[str, Any] | None = None,
    limit: int | None = None,
    max_tokens: int = 128,
    train: Path | None = None,
    seed: int = 0,
    progress: bool = False,
    judge: Target | None = None,
    rubric: str | None = None,
    judge_price: str | None = None,
    max_judge_usd: float = 1.0,
    baselines: Sequence[str | Baseline] = (),
    price: Callable[[TaskReport], dict[str, Any] | None] | None = None,
    base_model: str | None = None,
) -> TaskReport:
    """Score `tuned` and its base (`against`, else the adapter's base) on `data`; the report is
    written under the eval folder. `scorer="judge"` asks `judge` (a served target) whether each
    answer meets `rubric`. `baselines` are prompt arms on the base (few-shot shots come from
    `train`); `price` puts each arm's serving cost on the report before it is stored.
    Targets come resolved (`gateway.facade.sources.resolve_target`)."""
    if scorer == "judge" and not judge:
        raise SpecError("--scorer judge needs --judge (URL#MODEL, a deployment or a GGUF)")
    score = None if scorer == "judge" else get_scorer(scorer, pattern=pattern, schema=schema)
    base = against or base_of(tuned)
    require_same_backend(tuned, base)
    pairs, skipped = held_out(Path(data), limit)
    notes = [f"{skipped} examples without a final assistant answer were skipped"] if skipped else []
    contaminated = []
    if train is not None:
        from gateway.data.hygiene import contamination

        hits = contamination(load(Path(train)).examples, [ex for ex, _ in pairs])
        contaminated = [h.to_json() for h in hits]
        if hits:
            notes.append(
                f"{len({h.eval_line for h in hits})} eval examples share a 13-word run with {train}: "
                "their scores overstate the fine-tune"
            )
    prompts = [s[0] for _, s in pairs]
    arm_out, arm_notes, arm_hits = run_arms(
        base, prompts, pairs, baselines, train=train, data=Path(data), max_tokens=max_tokens,
        progress=progress, seed=seed,
    )  # fmt: skip
    notes += arm_notes
    base_got, base_hits = answers_with_usage(base, prompts, max_tokens, "base", progress)
    tuned_got, tuned_hits = answers_with_usage(tuned, prompts, max_tokens, "tuned", progress)
    base_out, tuned_out = [a.text for a in base_got], [a.text for a in tuned_got]
    questions = [question_of(msgs) for msgs in prompts]
    with contextlib.ExitStack() as stack:
        if score is None:
            from gateway.evaluate import judge as j

            price = j.JudgePrice.parse(judge_price)
            extra = [[a.text for a in got] for _, got in arm_out]
            graded = [
                j.pointwise_prompt(q, answer, s[1], j.parse_rubric(rubric))
                for i, ((_, s), q) in enumerate(zip(pairs, questions, strict=True))
                for answer in (base_out[i], tuned_out[i], *(e[i] for e in extra))
            ]
            usd = j.estimate_usd(graded, 1, price)
            j.check_budget(usd, max_judge_usd)
            gen = stack.enter_context(Generator(judge))
            by_ref = {s[1]: q for (_, s), q in zip(pairs, questions, strict=True)}
            ask = j.http_ask(gen.url, str(gen.target.model or "default_model"), judge.headers)
            score = j.pointwise_scorer(ask, j.parse_rubric(rubric), by_ref)
            notes.append(f"judge: {judge.ref}, estimated at ${usd:.4f} before the run")
        rows = []
        for i, ((ex, (_, ref)), q) in enumerate(zip(pairs, questions, strict=True)):
            b, t = base_out[i], tuned_out[i]
            row = Row(ex.line, q, ref, b, t, score(b, ref), score(t, ref))
            for baseline, got in arm_out:
                row.arms[baseline.name] = {"answer": got[i].text, "score": score(got[i].text, ref)}
            rows.append(row)
    stats = paired([r.base_score for r in rows], [r.tuned_score for r in rows], seed)
    tuned_scores = [r.tuned_score for r in rows]
    arms = [
        ArmResult(b.name, b.label, paired([r.arms[b.name]["score"] for r in rows], tuned_scores, seed))
        for b, _ in arm_out
    ]  # fmt: skip
    usage = {"tuned": Usage.of("fine-tune", tuned_got), "base": Usage.of("base", base_got)}
    usage |= {b.name: Usage.of(b.label, got) for b, got in arm_out}
    report = TaskReport(
        "ev-" + uuid.uuid4().hex[:10],
        time.time(),
        str(data),
        scorer,
        tuned.to_json(),
        base.to_json(),
        max_tokens,
        stats,
        rows,
        base_hits + tuned_hits + arm_hits,
        contaminated,
        notes,
        arms=arms,
        usage=usage if arm_out or price else {},
        base_model=base_model,
    )
    if price is not None and arm_out:
        report.cost = price(report)
    report.path = store(
        report.id,
        report.to_json(),
        report.to_markdown(),
        kind="task",
        target=tuned.ref,
        job_id=tuned.job_id,
        verdict=stats.verdict,
        summary=report.summary(),
        deltas=[Delta.of(report.label(), stats)]
        + [Delta.of(f"vs {a.label}", a.stats) for a in arms],
    )
    return report
