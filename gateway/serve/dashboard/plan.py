"""The dashboard's plan and data pages: the plan's cost table with every refusal's reason, the
total cost of each route against serving volume (re-planned with the same data, so the curve
is the planner's own arithmetic, not a second model), and the data check of a file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gateway.util.units import DAYS_PER_MONTH, human_count, human_hours, human_usd

# serving volumes the chart is drawn at: 1k to 10B tokens/day, five points a decade
GRID = [10 ** (3 + i / 5) for i in range(0, 36)]
MAX_ROUTES = 6


def job_files(folder: Path, limit: int = 200) -> list[str]:
    """Job files under `folder` (two levels): YAML files with a `base_model:` line."""
    found = []
    for pattern in ("*.y*ml", "*/*.y*ml", "*/*/*.y*ml"):
        for path in sorted(folder.glob(pattern)):
            if len(found) >= limit:
                return found
            try:
                text = path.read_text(encoding="utf-8", errors="replace")[:20_000]
            except OSError:
                continue
            if "base_model:" in text:
                found.append(str(path.relative_to(folder)))
    return found


def data_files(folder: Path, limit: int = 200) -> list[str]:
    found: list[str] = []
    for pattern in ("*.jsonl", "*.json", "*.parquet", "*/*.jsonl", "*/*.json", "*/*/*.jsonl"):
        found += [str(p.relative_to(folder)) for p in sorted(folder.glob(pattern))]
    return found[:limit]


def _route(offer: Any) -> tuple[str, str, str | None, str | None]:
    return (offer.provider, offer.kind, offer.hardware, offer.cloud)


def routes(result: Any) -> list[Any]:
    """The chart's lines: the cheapest feasible offer of each provider and kind."""
    seen: set[tuple[str, str]] = set()
    out = []
    for offer in result.feasible:
        key = (offer.provider, offer.kind)
        if key not in seen:
            seen.add(key)
            out.append(offer)
    return out[:MAX_ROUTES]


def curves(result: Any, report: Any, catalog: Any) -> dict[str, Any]:
    """Total cost over the horizon of each route at every grid volume."""
    from gateway.facade.plan import plan

    spec = result.spec
    lines = routes(result)
    series: list[list[float | None]] = [[] for _ in lines]
    for volume in GRID:
        serving = spec.serving.model_copy(update={"tokens_per_day": round(volume)})
        again = plan(
            spec.model_copy(update={"serving": serving}),
            report=report,
            catalog=catalog,
            machine=result.machine,
        )
        by_route = {_route(o): o for o in again.offers if o.feasible}
        for i, offer in enumerate(lines):
            found = by_route.get(_route(offer))
            series[i].append(round(found.total_usd.likely, 4) if found else None)
    return {
        "x": [round(v) for v in GRID],
        "labels": [offer.label for offer in lines],
        "series": series,
    }


def plan_page(result: Any, *, measured: float | None = None) -> dict[str, Any]:
    """The table, the explanation and the chart of one plan."""
    from gateway.catalog import load_catalog

    days = result.spec.serving.horizon_days
    rows = []
    for o in result.offers:
        rows.append(
            {
                "provider": o.provider,
                "where": o.where,
                "train": human_usd(o.train_usd.likely) if o.feasible else "-",
                "hours": human_hours(o.train_hours.likely) if o.train_hours.high else "-",
                "vram": f"{o.vram_gb.likely:.1f} GB" if o.vram_gb else "-",
                "serve": human_usd(o.serve_usd_month.likely * days / DAYS_PER_MONTH)
                if o.feasible
                else "-",
                "total": human_usd(o.total_usd.likely) if o.feasible else "-",
                "feasible": o.feasible,
                "status": "fits" if o.feasible else o.reason,
            }
        )
    for r in result.prompt_only:  # no fine-tune: the base with the job's eval baseline
        row = {
            "provider": "no fine-tune",
            "where": r.label,
            "train": "$0",
            "hours": "-",
            "vram": "-",
            "serve": human_usd(r.serve_usd_month.likely * days / DAYS_PER_MONTH),
            "total": human_usd(r.total_usd.likely),
            "feasible": True,
            "status": ("wins: " if r.wins else "prompt only: ") + r.status,
        }
        if r.wins:
            rows.insert(0, row)
        else:
            rows.append(row)
    breakeven = result.breakeven_tokens_per_day
    chart = curves(result, result.report, load_catalog())
    marks = [{"x": float(result.spec.serving.tokens_per_day), "label": "your estimate"}]
    if breakeven:
        marks.append({"x": float(round(breakeven)), "label": "break-even"})
    if measured:
        marks.append({"x": float(measured), "label": "measured"})
    tok = result.tokens()
    return {
        "title": result.spec.name or result.spec.base_model,
        "summary": (
            f"{result.spec.base_model}: {tok['examples']:,} examples x ~{tok['avg_tokens']:.0f} "
            f"tokens x {tok['epochs']:g} epochs, {result.spec.method}/{result.spec.objective}; "
            f"serving {human_count(result.spec.serving.tokens_per_day)} tokens/day for {days:g} days"
        ),
        "explain": result.explain(),
        "rows": rows,
        "days": days,
        "breakeven": round(breakeven) if breakeven else None,
        "breakeven_text": (
            f"Break-even serving volume: ~{human_count(breakeven)} tokens/day "
            f"({result.breakeven_note})"
            if breakeven
            else f"No break-even: {result.breakeven_note}"
        ),
        "measured": measured,
        "chart": {**chart, "marks": [m for m in marks if m["x"] > 0]},
        "warnings": result.warnings,
    }


def data_page(
    path: Path, *, base: str | None = None, eval_path: Path | None = None
) -> dict[str, Any]:
    """The data check of one file: findings by line, lengths, duplicates, contamination, and
    samples through the chat template with the trained tokens marked (when the base's
    tokenizer is on disk)."""
    from gateway.data.checker import check

    report = check(path, base=base or None, eval_path=eval_path)
    data = report.to_json()
    bins = report.tokens.histogram(16)
    top = max((c for _, _, c in bins), default=0) or 1
    suggested = data["suggested_max_seq_len"]
    hist = [
        {
            "low": lo,
            "high": hi,
            "count": c,
            "pct": round(100 * c / top, 1),
            "over": bool(suggested) and lo > suggested,
        }
        for lo, hi, c in bins
    ]
    samples: list[dict[str, Any]] = []
    if base:
        from gateway.data.render import render_samples
        from gateway.data.tokens import load_tokenizer

        tok = load_tokenizer(base)
        if tok is not None and getattr(tok, "chat_template", None):
            for r in render_samples(report.loaded.examples, tok, n=4):
                samples.append({"line": r.line, "pieces": r.pieces, "problems": r.problems})
    return {
        "file": str(path),
        "format": data["format"],
        "n_examples": data["n_examples"],
        "errors": data["errors"],
        "warnings": data["warnings"],
        "exact": data["exact_duplicates"],
        "near": data["near_duplicates"],
        "contamination": data["contamination"],
        "tokens": data["tokens"],
        "suggested": suggested,
        "hist": hist,
        "samples": samples,
        "notes": data["notes"],
        "command": " ".join(
            ["tunegate data check", str(path)]
            + ([f"--base {base}"] if base else [])
            + ([f"--eval {eval_path}"] if eval_path else [])
        ),
    }
