"""The plan's "no fine-tune" rows: the base with the job's prompt baseline, priced as a route.

A job whose `eval:` names baselines (and has eval data) gets one row per baseline: no
training, and serving the same requests with a longer prompt. The extra prompt tokens are
measured when a task eval of this base on the same eval data ran that baseline (the journal
keeps its usage), else estimated (K shots as K average training examples; a system prompt as
its characters / 4). The row wins the plan only on evidence: when that eval found the
fine-tune no better than the prompt, and the prompt costs less over the horizon. Without a
measurement it is priced advice, ranked after the training offers.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gateway.cost.offer import Offer
from gateway.data.report import DatasetReport
from gateway.spec import JobSpec
from gateway.util.units import DAYS_PER_MONTH, Range, human_usd


@dataclass
class PromptRoute:
    """No fine-tune: the base model served with a baseline prompt."""

    baseline: str  # few-shot:5 | system:FILE
    label: str  # base + 5-shot
    extra_prompt_tokens: float
    tokens_source: str  # measured (ev-...) | estimated (...)
    serve_usd_month: Range
    serve: str
    horizon_days: float
    measured: dict[str, Any] | None = None  # the journaled arm: verdict, delta, CI, report
    wins: bool = False
    notes: list[str] = field(default_factory=list)

    @property
    def total_usd(self) -> Range:
        return self.serve_usd_month * (self.horizon_days / DAYS_PER_MONTH)

    @property
    def status(self) -> str:
        m = self.measured
        if m is None:
            return (
                "quality not measured: the job's eval scores it beside the fine-tune "
                f"(tunegate eval JOB --baseline {self.baseline})"
            )
        return (
            f"measured in {m['report']}: {m['says']} (fine-tune {m['delta']:+.1f} points, "
            f"95% CI [{m['ci_low']:+.1f}, {m['ci_high']:+.1f}])"
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "baseline": self.baseline,
            "label": self.label,
            "extra_prompt_tokens": round(self.extra_prompt_tokens),
            "tokens_source": self.tokens_source,
            "train_usd": 0.0,
            "serve": self.serve,
            "serve_usd_month": self.serve_usd_month.to_json(),
            "total_usd": self.total_usd.to_json(),
            "measured": self.measured,
            "wins": self.wins,
            "status": self.status,
            "notes": self.notes,
        }


def _measured(spec: JobSpec, data: Path, baseline: str) -> dict[str, Any] | None:
    """The newest journaled task eval of this base on this eval data that ran `baseline`:
    the fine-tune's paired result against it and the tokens each arm measured."""
    from gateway.evaluate.task import data_sha
    from gateway.journal import Journal

    sha = data_sha(data)
    if sha is None:
        return None
    with Journal() as journal:
        rows = journal.evals()
    for row in reversed(rows):
        s = row.get("summary") or {}
        if row["kind"] != "task" or s.get("data_sha") != sha:
            continue
        if s.get("base_model") != spec.base_model:
            continue
        arm = next((a for a in s.get("arms") or [] if a.get("name") == baseline), None)
        if arm is not None:
            usage = s.get("usage") or {}
            return {**arm, "report": row["id"], "usage": usage}
    return None


def _extra_tokens(baseline: str, report: DatasetReport) -> tuple[float, str] | None:
    kind, _, arg = baseline.partition(":")
    if kind == "few-shot":
        k = int(arg)
        return k * report.avg_tokens, f"estimated: {k} x ~{report.avg_tokens:.0f}-token examples"
    try:
        text = Path(arg).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None
    return len(text) / 4, "estimated: its characters / 4"


def _label(baseline: str) -> str:
    kind, _, arg = baseline.partition(":")
    return (
        f"base + {arg}-shot" if kind == "few-shot" else f"base + system prompt ({Path(arg).name})"
    )


def prompt_routes(
    spec: JobSpec,
    report: DatasetReport,
    replan: Callable[[JobSpec], list[Offer]],
    best_total: float | None,
) -> list[PromptRoute]:
    """One priced row per baseline of the job's `eval:`; `replan` prices a spec as the plan
    does (its offers), and `best_total` is the cheapest training offer's total over the
    horizon, what a prompt must undercut to win."""
    cfg = spec.eval
    data = (cfg.data or spec.validation) if cfg is not None else None
    serving = spec.serving
    if cfg is None or not cfg.baselines or data is None or serving.tokens_per_day <= 0:
        return []
    per_request = max(1.0, report.avg_tokens)
    out = []
    for baseline in cfg.baselines:
        measured = _measured(spec, Path(data), baseline)
        usage = (measured or {}).get("usage") or {}
        arm, tuned = usage.get(baseline) or {}, usage.get("tuned") or {}
        if arm.get("prompt") is not None and tuned.get("prompt") is not None:
            extra, source = arm["prompt"] - tuned["prompt"], f"measured in {measured['report']}"  # type: ignore[index]
        else:
            guessed = _extra_tokens(baseline, report)
            if guessed is None:
                continue
            extra, source = guessed
        extra = max(0.0, extra)
        grow = (per_request + extra) / per_request
        at = spec.model_copy(
            update={
                "serving": serving.model_copy(
                    update={
                        "tokens_per_day": round(serving.tokens_per_day * grow),
                        "output_share": serving.output_share / grow,
                    }
                ),
                "eval": cfg.model_copy(update={"baselines": []}),
            }
        )
        offers = [o for o in replan(at) if o.feasible]
        if not offers:
            continue
        best = min(offers, key=lambda o: o.serve_usd_month.likely)
        route = PromptRoute(
            baseline,
            _label(baseline),
            extra,
            source,
            best.serve_usd_month,
            f"{best.provider}: {best.serve}",
            serving.horizon_days,
            measured={k: v for k, v in measured.items() if k != "usage"} if measured else None,
        )
        cheaper = best_total is None or route.total_usd.likely < best_total
        # on evidence only: the fine-tune measured no better (on par, or worse) than the prompt
        route.wins = bool(measured) and measured["verdict"] in ("ok", "warn", "fail") and cheaper  # type: ignore[index]
        out.append(route)
    return out


def explain(routes: list[PromptRoute], best_total: float | None, days: float) -> list[str]:
    """The plan's sentences about not fine-tuning at all."""
    lines = []
    for r in routes:
        total = r.total_usd.likely
        against = ""
        if best_total is not None:
            diff = total - best_total
            against = f", {human_usd(abs(diff))} {'less' if diff < 0 else 'more'} than training"
        head = (
            f"No fine-tune ({r.label}): {human_usd(total)} over {days:g} days{against} "
            f"(+{r.extra_prompt_tokens:,.0f} prompt tokens a request, {r.tokens_source})."
        )
        if r.wins:
            m = r.measured or {}
            head = (
                f"No fine-tune wins: against {r.label} the fine-tune was {m['says']} in "
                f"{m['report']} ({m['delta']:+.1f} points, 95% CI [{m['ci_low']:+.1f}, "
                f"{m['ci_high']:+.1f}]), and the prompt costs {human_usd(total)} over {days:g} "
                f"days{against}. To train anyway, `tunegate train` takes the cheapest training offer."
            )
        lines.append(head if r.wins else f"{head} {r.status[0].upper()}{r.status[1:]}.")
    return lines
