"""Where eval reports live, and how they are found again.

A report about a job's model is stored with the job (`JOBDIR/evals/ID/`), any other under
`$TUNEGATE_HOME/eval/reports/ID/`; each folder holds `report.json`, `report.md` and, when
matplotlib is installed (the `eval` extra), `deltas.png`: every task's paired delta with its
95% interval and the warn / fail lines. The journal keeps one row per report (kind, verdict,
a summary) so `tunegate jobs` and `status` show verdicts without reading the files.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gateway.catalog import tunegate_home
from gateway.evaluate.stats import FAIL_PTS, WARN_PTS


@dataclass(frozen=True)
class Delta:
    """One row of the deltas chart: a task (or scorer) and its paired delta, in points."""

    label: str
    delta: float
    low: float
    high: float
    verdict: str

    @classmethod
    def of(cls, label: str, stats: Any, verdict: str | None = None) -> Delta:
        """From paired statistics (a `Paired`, or its JSON); `verdict` overrides theirs."""
        get = stats.get if isinstance(stats, dict) else lambda k: getattr(stats, k)
        return cls(label, get("delta"), get("ci_low"), get("ci_high"), verdict or get("verdict"))


def cell(text: str, width: int = 60) -> str:
    """Text for one cell of a Markdown table: one line, pipes escaped, cut at `width`."""
    flat = " ".join(str(text).split()).replace("|", "\\|")
    return flat if len(flat) <= width else flat[: width - 1] + "…"


def folder_for(report_id: str, job_id: str | None) -> Path:
    if job_id:
        from gateway.journal.records import job_dir

        return job_dir(job_id) / "evals" / report_id
    return tunegate_home() / "eval" / "reports" / report_id


def store(
    report_id: str,
    data: dict[str, Any],
    markdown: str,
    *,
    kind: str,
    target: str,
    job_id: str | None = None,
    verdict: str | None = None,
    summary: dict[str, Any] | None = None,
    deltas: list[Delta] | None = None,
) -> str:
    """Write a report's JSON, Markdown and chart, and journal it; returns its folder."""
    folder = folder_for(report_id, job_id)
    folder.mkdir(parents=True, exist_ok=True)
    png = (
        plot_deltas(deltas, folder / "deltas.png", title=f"{kind} {report_id}") if deltas else None
    )
    stored = {**data, "at": time.time(), "chart": str(png) if png else None}
    (folder / "report.json").write_text(json.dumps(stored, indent=1, default=str))
    (folder / "report.md").write_text(markdown + (f"\n![deltas]({png.name})\n" if png else ""))
    from gateway.journal import Journal

    with Journal() as journal:
        journal.add_eval(
            report_id,
            kind,
            target,
            str(folder),
            job_id=job_id,
            verdict=verdict,
            summary=summary,
        )
    return str(folder)


def plot_deltas(deltas: list[Delta], path: Path, *, title: str = "") -> Path | None:
    """A PNG of each delta with its interval (None when matplotlib is not installed)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    colours = {"fail": "#c0392b", "warn": "#e67e22", "improved": "#27ae60", "ok": "#2c3e50"}
    fig, ax = plt.subplots(figsize=(7, 1.2 + 0.45 * len(deltas)), dpi=110)
    for y, d in enumerate(reversed(deltas)):
        colour = colours.get(d.verdict, "#7f8c8d")
        ax.errorbar(
            d.delta,
            y,
            xerr=[[max(0.0, d.delta - d.low)], [max(0.0, d.high - d.delta)]],
            fmt="o",
            color=colour,
            capsize=4,
        )
        ax.annotate(
            f"{d.delta:+.1f} ({d.verdict})",
            (d.high, y),
            xytext=(6, -3),
            fontsize=8,
            textcoords="offset points",
        )
    ax.axvline(0, color="#95a5a6", lw=1)
    ax.axvline(-WARN_PTS, color=colours["warn"], lw=1, ls="--")
    ax.axvline(-FAIL_PTS, color=colours["fail"], lw=1, ls="--")
    ax.set_yticks(range(len(deltas)), [d.label for d in reversed(deltas)])
    ax.set_xlabel(f"tuned - base, points (95% CI); dashed: -{WARN_PTS:g} warn, -{FAIL_PTS:g} fail")
    ax.set_ylim(-0.7, len(deltas) - 0.3)
    ax.margins(x=0.15)
    if title:
        ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def latest_verdicts(journal: Any) -> dict[str, dict[str, Any]]:
    """Each job's newest task-level eval row (a job's own eval over an export gate), by job id:
    what the jobs table shows."""
    out: dict[str, dict[str, Any]] = {}
    for row in journal.evals():
        if row["job_id"] and row["kind"] in ("task", "regress"):
            out[row["job_id"]] = row
    return out


def verdict_text(row: dict[str, Any]) -> str:
    """A journaled eval's verdict with its delta, as the jobs tables show it: `improved (+40.9)`."""
    delta = (row.get("summary") or {}).get("delta")
    label = row["verdict"] or row["kind"]
    return f"{label} ({delta:+.1f})" if isinstance(delta, int | float) else label


def describe(row: dict[str, Any]) -> str:
    """One journaled eval report in a line: what ran, the scores, the verdict, where it is."""
    s = row.get("summary") or {}
    kind = row["kind"]
    if kind == "export-gate":
        head = (
            f"export gate: {'passed' if s.get('passed') else 'FAILED'}, source {s.get('base', 0):.1f}"
            f" -> export {s.get('tuned', 0):.1f} ({s.get('delta', 0):+.1f}; allowed drop "
            f"{s.get('max_drop', 0):g})"
        )
    elif kind == "regress":
        tasks = s.get("tasks") or {}
        head = f"regression ({s.get('suite')}): {row['verdict']}; " + ", ".join(
            f"{name} {t['delta']:+.1f}" for name, t in tasks.items()
        )
    elif kind == "task":
        head = (
            f"task eval ({Path(str(s.get('data'))).name}, {s.get('scorer')}): base "
            f"{s.get('base', 0):.1f} -> tuned {s.get('tuned', 0):.1f} ({s.get('delta', 0):+.1f}, "
            f"95% CI [{s.get('ci_low', 0):+.1f}, {s.get('ci_high', 0):+.1f}]) {row['verdict']}"
        )
        for arm in s.get("arms") or []:
            head += (
                f"; against {arm['label']} ({arm['base']:.1f}): {arm['says']} ({arm['delta']:+.1f})"
            )
    else:
        head = f"{kind}: {row.get('verdict') or 'done'}"
    return f"{head}; report {row['path']}/report.md"
