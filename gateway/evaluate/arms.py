"""A task eval's prompt arms: each baseline answered by the base, its measured tokens per
request, the fine-tune's paired delta against it, and how a report shows them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gateway.evaluate.baselines import Baseline, build_arm, parse_baseline
from gateway.evaluate.generate import Answer, Target, answers_with_usage
from gateway.evaluate.stats import Paired

# the paired verdict of the fine-tune against a prompt arm, in the words that question wants
ARM_VERDICTS = {
    "improved": "fine-tune wins",
    "ok": "on par",
    "warn": "prompt wins",
    "fail": "prompt wins",
    "inconclusive": "inconclusive",
}


@dataclass
class Usage:
    """An arm's measured tokens per request (means over the eval's requests)."""

    label: str
    prompt: float | None
    completion: float | None
    requests: int

    @classmethod
    def of(cls, label: str, got: list[Answer]) -> Usage:
        if not got or not all(a.measured for a in got):
            return cls(label, None, None, len(got))
        n = len(got)
        prompt = sum(a.prompt_tokens or 0 for a in got) / n
        return cls(label, prompt, sum(a.completion_tokens or 0 for a in got) / n, n)


@dataclass
class ArmResult:
    """A prompt baseline's score and the fine-tune's paired delta against it."""

    name: str
    label: str
    stats: Paired  # the arm as "base", the fine-tune as "tuned"

    @property
    def verdict(self) -> str:
        return ARM_VERDICTS[self.stats.verdict]

    def to_json(self) -> dict[str, Any]:
        """Its paired statistics (`verdict`: improved, ok, ...) and `says`: that verdict as
        the fine-tune against a prompt (fine-tune wins, on par, prompt wins)."""
        return {"name": self.name, "label": self.label, **self.stats.to_json(),
                "says": self.verdict}  # fmt: skip


def arms_markdown(report: Any) -> list[str]:
    """The fine-tune against each prompt arm, with every arm's tokens per request, and
    (when priced) what each costs to serve."""
    if not report.arms and not report.usage:
        return []
    lines = [
        "## Against the prompt",
        "",
        "| arm | score | fine-tune - arm | 95% CI | verdict | prompt tok/req | answer tok/req |",
        "|---|---|---|---|---|---|---|",
    ]

    def tokens(name: str) -> str:
        u = report.usage.get(name)
        if u is None or u.prompt is None or u.completion is None:
            return "n/a | n/a"
        return f"{u.prompt:.0f} | {u.completion:.0f}"

    s = report.stats
    lines.append(f"| fine-tune | {s.tuned:.1f} | | | | {tokens('tuned')} |")
    lines.append(
        f"| base | {s.base:.1f} | {s.delta:+.1f} | [{s.ci_low:+.1f}, {s.ci_high:+.1f}] | "
        f"{ARM_VERDICTS[s.verdict]} | {tokens('base')} |"
    )
    for arm in report.arms:
        a = arm.stats
        lines.append(
            f"| {arm.label} | {a.base:.1f} | {a.delta:+.1f} | [{a.ci_low:+.1f}, "
            f"{a.ci_high:+.1f}] | **{arm.verdict}** | {tokens(arm.name)} |"
        )
    lines.append("")
    if report.cost:
        lines += cost_markdown(report.cost)
    return lines


def cost_markdown(cost: dict[str, Any]) -> list[str]:
    """The serving-cost part of a report: each arm on each route, then the plain sentences."""
    arms = cost.get("arms") or {}
    routes = cost.get("routes") or []
    lines = []
    if routes and arms:
        names = list(arms)
        lines += [
            "| serving route | " + " | ".join(arms[n]["label"] for n in names) + " |",
            "|---|" + "---|" * len(names),
        ]
        for route in routes:
            cells = [route["usd_month"].get(n) for n in names]
            shown = ["-" if c is None else f"${c:,.2f}" for c in cells]
            lines.append(f"| {route['route']} | " + " | ".join(shown) + " |")
        lines.append("")
    lines += [f"- {sentence}" for sentence in cost.get("sentences") or []]
    return [*lines, ""] if lines else []


def run_arms(
    base: Target,
    prompts: list[list[dict[str, Any]]],
    pairs: list[Any],
    baselines: Sequence[str | Baseline],
    *,
    train: Path | None,
    data: Path,
    max_tokens: int,
    progress: bool,
    seed: int,
) -> tuple[list[tuple[Baseline, list[Answer]]], list[str], int]:
    """Each prompt baseline answered by the base: (baseline, answers), notes, cache hits.
    Every arm is built (and refused) before any is generated."""
    built = [
        build_arm(b if isinstance(b, Baseline) else parse_baseline(b), prompts,
                  [ex for ex, _ in pairs], train, data, seed)
        for b in baselines
    ]  # fmt: skip
    out, notes, hits = [], [], 0
    for arm in built:
        got, cached = answers_with_usage(
            base, arm.prompts, max_tokens, arm.baseline.label, progress
        )
        out.append((arm.baseline, got))
        notes += arm.notes
        hits += cached
    return out, notes, hits
