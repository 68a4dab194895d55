"""The export gate: the job's task eval run on an export against the model it came from.

The numeric check (`exporters.verify`) says whether the export's logits stay close to the
source's; this says whether what the user trained for survived. The same held-out examples are
answered by the source (the adapter on its 16-bit base, in-process) and by the export through
the runtime that serves it (llama.cpp for a GGUF, mlx-lm for MLX, transformers for a merged
folder), and both are scored against the references. An export that loses more than the stated
number of points (`eval.export_max_drop`, default 3) is not marked verified: `exporters.pipeline`
leaves it at `NAME.unverified` with this report beside it. The limit is applied to the observed
drop; the report says when the 95% interval is too wide to be sure either way.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from exporters.formats import EXPORT_TARGETS, MERGED
from gateway.errors import SpecError
from gateway.evaluate.generate import Target, answers, export_target, held_out, question_of
from gateway.evaluate.reports import Delta, cell, store
from gateway.evaluate.scorers import get_scorer
from gateway.evaluate.stats import Paired, paired
from gateway.spec import EvalConfig

SHOWN = 10


@dataclass
class GateReport:
    id: str
    data: str
    scorer: str
    source: dict[str, Any]
    export: dict[str, Any]
    max_drop: float
    stats: Paired  # the source as "base", the export as "tuned"
    same_answers: float  # share of answers identical word for word
    differing: list[dict[str, Any]]
    notes: list[str] = field(default_factory=list)
    path: str | None = None

    @property
    def passed(self) -> bool:
        return self.stats.delta >= -self.max_drop

    @property
    def failures(self) -> list[str]:
        if self.passed:
            return []
        return [
            f"the task eval dropped {-self.stats.delta:.1f} points on the export "
            f"({self.stats.base:.1f} -> {self.stats.tuned:.1f}, {self.scorer} on {self.data}), "
            f"more than the {self.max_drop:g} allowed (report: {self.path})"
        ]

    def summary(self) -> dict[str, Any]:
        keep = ("n", "base", "tuned", "delta", "ci_low", "ci_high", "verdict")
        return {
            "passed": self.passed,
            "max_drop": self.max_drop,
            "scorer": self.scorer,
            "data": self.data,
            "same_answers": self.same_answers,
            "export": self.export["ref"],
            "report": self.path,
            **{k: getattr(self.stats, k) for k in keep},
        }

    def to_json(self) -> dict[str, Any]:
        return {
            **self.__dict__,
            "stats": self.stats.to_json(),
            "passed": self.passed,
            "failures": self.failures,
        }

    def to_markdown(self) -> str:
        s = self.stats
        sure = s.ci_low > -self.max_drop or s.ci_high < -self.max_drop
        lines = [
            f"# Export gate {self.id}",
            "",
            f"- source: `{self.source['ref']}` via {self.source['backend']}",
            f"- export: `{self.export['ref']}` via {self.export['backend']}",
            f"- data: `{self.data}` ({s.n} examples), scorer `{self.scorer}`",
            "",
            "| source | export | delta | 95% CI | allowed drop | gate |",
            "|---|---|---|---|---|---|",
            f"| {s.base:.1f} | {s.tuned:.1f} | {s.delta:+.1f} | [{s.ci_low:+.1f}, {s.ci_high:+.1f}]"
            f" | {self.max_drop:g} | **{'passed' if self.passed else 'FAILED'}** |",
            "",
            f"{self.same_answers:.0%} of the answers are identical word for word.",
        ]
        if not sure:
            lines.append(
                f"The interval spans the {self.max_drop:g}-point limit: more examples "
                "(eval.limit, or a larger eval file) would settle it."
            )
        lines += [f"> {n}" for n in self.notes]
        if self.differing:
            lines += ["", "## Examples scored differently", ""]
            lines += ["| line | prompt | source | export |", "|---|---|---|---|"]
            for r in self.differing[:SHOWN]:
                cells = [cell(r[k]) for k in ("prompt", "source", "export")]
                lines.append(f"| {r['line']} | " + " | ".join(cells) + " |")
        return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class Gate:
    """What `exporters.pipeline.export` calls once an export is written and numerically verified."""

    cfg: EvalConfig
    data: Path
    job_id: str | None = None

    def __call__(
        self, kind: str, base: Path, adapter: Path | None, export: Path, final: Path
    ) -> GateReport | None:
        """Score `export` (still under its temporary name) against its source; None for the
        kinds that cannot answer on their own (a GGUF LoRA, an mlx-lm adapter)."""
        if kind not in EXPORT_TARGETS:
            return None
        from gateway.catalog.extras import MissingExtraError

        source_ref = str(adapter or base)
        source = Target(source_ref, "hf", "hf", path=base, adapter=adapter)
        if kind == MERGED:
            exported = Target(str(final), "hf", "hf", path=export)
        else:
            exported = export_target(str(final), kind, export)
        try:
            return run_gate(source, exported, self.cfg, self.data, job_id=self.job_id)
        except MissingExtraError as exc:  # the export is fine; its task eval cannot run here
            raise MissingExtraError(
                f"the task eval of the export (the job's `eval:`): {exc.message}",
                fix=f"{exc.fix}; or export without it: --no-eval",
            ) from None


def run_gate(
    source: Target, export: Target, cfg: EvalConfig, data: Path, *, job_id: str | None = None
) -> GateReport:
    """The task eval of `export` against `source`, stored (with the job when there is one)."""
    pairs, _ = held_out(data, cfg.limit)
    score = get_scorer(cfg.scorer, pattern=cfg.pattern, schema=cfg.json_schema)
    prompts = [s[0] for _, s in pairs]
    from_source, _ = answers(source, prompts, cfg.max_tokens, "source", False)
    from_export, _ = answers(export, prompts, cfg.max_tokens, "export", False)
    refs = [s[1] for _, s in pairs]
    a = [score(x, r) for x, r in zip(from_source, refs, strict=True)]
    b = [score(x, r) for x, r in zip(from_export, refs, strict=True)]
    stats = paired(a, b)
    differing = [
        {"line": ex.line, "prompt": question_of(p), "source": x, "export": y, "scores": [sa, sb]}
        for (ex, _), p, x, y, sa, sb in zip(
            pairs, prompts, from_source, from_export, a, b, strict=True
        )
        if sa != sb
    ]
    same = sum(x.strip() == y.strip() for x, y in zip(from_source, from_export, strict=True))
    report = GateReport(
        "gate-" + uuid.uuid4().hex[:10],
        str(data),
        cfg.scorer,
        source.to_json(),
        {**export.to_json(), "path": export.ref},
        float(cfg.export_max_drop if cfg.export_max_drop is not None else 0.0),
        stats,
        same / len(pairs),
        differing,
        [
            f"source and export run on different backends ({source.backend}, {export.backend}): "
            "that is the change being measured"
        ],
    )
    report.path = store(
        report.id,
        {**report.to_json(), "created_at": time.time()},
        report.to_markdown(),
        kind="export-gate",
        target=export.ref,
        job_id=job_id,
        verdict="passed" if report.passed else "failed",
        summary=report.summary(),
        deltas=[Delta.of(f"export ({cfg.scorer})", stats, "ok" if report.passed else "fail")],
    )
    return report


def gate_for(
    job: Any | None,
    *,
    data: Path | None = None,
    scorer: str | None = None,
    pattern: str | None = None,
    max_drop: float | None = None,
    limit: int | None = None,
) -> Gate | None:
    """The gate for an export: the job's `eval:` (a `JobRecord`'s spec) with the options given
    on top. None when there is nothing to run: no eval data, or `export_max_drop: null`."""
    spec = dict(getattr(job, "spec", None) or {})
    given = {
        k: v
        for k, v in {
            "data": data,
            "scorer": scorer,
            "pattern": pattern,
            "export_max_drop": max_drop,
            "limit": limit,
        }.items()
        if v is not None
    }
    configured = spec.get("eval")
    if configured is None and not given:
        return None
    merged = {**(configured or {}), **given}
    if scorer is not None and scorer != "regex" and pattern is None:
        merged.pop("pattern", None)
    try:
        cfg = EvalConfig.model_validate(merged)
    except ValueError as exc:
        raise SpecError(f"the export's task eval: {exc}") from None
    if cfg.export_max_drop is None:
        return None
    source = cfg.data or spec.get("validation")
    if not source:
        raise SpecError(
            "the export's task eval has no data: the job file's eval has no `data` and the job "
            "no validation file",
            fix="pass --eval-data FILE, or --no-eval to export without the task eval",
        )
    return Gate(cfg, Path(source), getattr(job, "id", None))
