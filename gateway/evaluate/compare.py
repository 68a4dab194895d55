"""Layer 3, `tunegate eval compare A B`: both models answer the same examples, a judge picks a
winner in both orders (win / loss / tie / inconsistent, and how often the two orders agree),
and every exact scorer asked for gives a paired delta with its statistics."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gateway.errors import SpecError
from gateway.evaluate import judge as j
from gateway.evaluate.generate import Generator, Target, answers, held_out, question_of
from gateway.evaluate.reports import Delta, store
from gateway.evaluate.scorers import get_scorer
from gateway.evaluate.stats import paired


@dataclass
class CompareReport:
    id: str
    data: str
    a: dict[str, Any]
    b: dict[str, Any]
    judge: str | None
    judged: dict[str, Any] | None  # the pairwise summary
    pairs: list[dict[str, Any]]
    scorers: dict[str, Any]  # scorer -> paired stats (A as base, B as tuned)
    estimated_judge_usd: float
    notes: list[str] = field(default_factory=list)
    path: str | None = None

    def to_json(self) -> dict[str, Any]:
        return self.__dict__.copy()

    def to_markdown(self) -> str:
        lines = [f"# Compare {self.id}", "", f"- A: `{self.a['ref']}` via {self.a['backend']}"]
        lines += [f"- B: `{self.b['ref']}` via {self.b['backend']}", f"- data: `{self.data}`", ""]
        if self.judged:
            s = self.judged
            lines += [
                f"Judge `{self.judge}`, both orders: A wins {s['wins_a']}, B wins {s['wins_b']}, "
                f"ties {s['ties']}, inconsistent {s['inconsistent']} "
                f"(position consistency {s['position_consistency']:.0%}).",
                "",
            ]
        if self.scorers:
            lines += [
                "| scorer | A | B | B - A | 95% CI | McNemar p |",
                "|---|---|---|---|---|---|",
            ]
            for name, st in self.scorers.items():
                p = "n/a" if st["p_value"] is None else f"{st['p_value']:.3g}"
                lines.append(
                    f"| {name} | {st['base']:.1f} | {st['tuned']:.1f} | {st['delta']:+.1f} | "
                    f"[{st['ci_low']:+.1f}, {st['ci_high']:+.1f}] | {p} |"
                )
        lines += [f"> {n}" for n in self.notes]
        return "\n".join(lines) + "\n"


def compare(
    ta: Target,
    tb: Target,
    data: Path,
    *,
    judge: Target | None = None,
    rubric: str | None = None,
    scorers: tuple[str, ...] = (),
    pattern: str | None = None,
    limit: int | None = None,
    max_tokens: int = 128,
    judge_price: str | None = None,
    max_judge_usd: float = 1.0,
    progress: bool = False,
) -> CompareReport:
    if not judge and not scorers:
        raise SpecError("compare needs --judge, --scorer, or both")
    pairs, _ = held_out(Path(data), limit)
    prompts = [s[0] for _, s in pairs]
    out_a, _ = answers(ta, prompts, max_tokens, "A", progress)
    out_b, _ = answers(tb, prompts, max_tokens, "B", progress)
    notes = []
    if ta.backend != tb.backend:
        notes.append(f"A runs on {ta.backend} and B on {tb.backend}")
    stats = {}
    for name in scorers:
        score = get_scorer(name, pattern=pattern)
        refs = [s[1] for _, s in pairs]
        sa = [score(x, r) for x, r in zip(out_a, refs, strict=True)]
        sb = [score(x, r) for x, r in zip(out_b, refs, strict=True)]
        stats[name] = paired(sa, sb).to_json()
    questions = [question_of(p) for p in prompts]
    usd, judged, results = 0.0, None, []
    if judge:
        criteria = j.parse_rubric(rubric)
        shown = [
            j.pairwise_prompt(q, x, y, criteria)
            for q, x, y in zip(questions, out_a, out_b, strict=True)
        ]
        usd = j.estimate_usd(shown, 2, j.JudgePrice.parse(judge_price))
        j.check_budget(usd, max_judge_usd)
        with Generator(judge) as gen:
            ask = j.http_ask(gen.url, str(gen.target.model or "default_model"), judge.headers)
            rows = [
                (ex.line, q, x, y)
                for (ex, _), q, x, y in zip(pairs, questions, out_a, out_b, strict=True)
            ]
            results = j.pairwise(rows, ask, criteria)
        judged = j.summary(results)
    report = CompareReport(
        "cmp-" + uuid.uuid4().hex[:10],
        str(data),
        ta.to_json(),
        tb.to_json(),
        judge.ref if judge else None,
        judged,
        [r.to_json() for r in results],
        stats,
        usd,
        notes,
    )
    report.path = store(
        report.id,
        report.to_json(),
        report.to_markdown(),
        kind="compare",
        target=f"{ta.ref} vs {tb.ref}",
        job_id=tb.job_id or ta.job_id,
        summary={"judged": judged, "scorers": stats},
        deltas=[Delta.of(name, st) for name, st in stats.items()],
    )
    return report
