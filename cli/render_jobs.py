"""Rendering jobs for people: the jobs table, one job's status, event lines, a loss sparkline."""

from __future__ import annotations

import datetime as dt
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from gateway.evaluate.reports import describe as eval_line
from gateway.evaluate.reports import verdict_text
from gateway.util.units import human_time

_BLOCKS = "▁▂▃▄▅▆▇█"
console = Console(highlight=False)


def _usd(value: Any) -> str:
    if isinstance(value, dict):
        value = value.get("likely", value.get("usd"))
    return f"${value:,.2f}" if isinstance(value, (int, float)) else "-"


def sparkline(values: list[float], width: int = 40) -> str:
    """The values as a row of block characters (the last `width` of them)."""
    values = values[-width:]
    low, high = min(values), max(values)
    span = (high - low) or 1.0
    return "".join(_BLOCKS[int((v - low) / span * (len(_BLOCKS) - 1))] for v in values)


def event_line(ev: Any) -> str:
    step = f" step {ev.step}" if ev.step is not None else ""
    return f"{dt.datetime.fromtimestamp(ev.ts):%H:%M:%S} {ev.kind:<8}{step} {ev.message}"


def jobs_table(records: list[Any], verdicts: dict[str, dict[str, Any]] | None = None) -> None:
    if not records:
        console.print("no jobs yet: `tunegate train job.yaml` launches one")
        return
    table = Table(box=None, header_style="bold")
    # the id is what a user copies into the next command: never shortened; the rest may wrap
    table.add_column("id", no_wrap=True, min_width=max(len(r.id) for r in records))
    for col in ("provider", "state", "base model", "created", "estimate", "actual", "eval"):
        table.add_column(col, overflow="fold")
    table.add_column("remote id", overflow="fold")
    for r in records:
        table.add_row(
            r.id,
            r.provider,
            r.state,
            escape(r.base_model),
            human_time(r.created_at),
            _usd((r.estimate or {}).get("train_usd")),
            _usd((r.actual or {}).get("usd")),
            verdict_text(verdicts[r.id]) if r.id in (verdicts or {}) else "-",
            escape(r.remote_id or "-"),
        )
    console.print(table)


def eval_lines(journal: Any, job_id: str, reports: list[Any]) -> list[str]:
    """One line for each report that just ran, as `tunegate status` shows it."""
    ids = {r.id for r in reports}
    return [eval_line(row) for row in journal.evals(job_id) if row["id"] in ids]


def job_status(data: dict[str, Any]) -> None:
    p = data.get("progress") or {}
    console.print(f"[bold]{data['id']}[/] on {data['provider']}: [bold]{data['state']}[/]")
    console.print(f"  base model   {escape(data['base_model'])}")
    console.print(f"  remote id    {escape(str(data['remote_id'] or '-'))}")
    if p.get("step") is not None:
        total = f"/{p['total_steps']}" if p.get("total_steps") else ""
        loss = f", loss {p['loss']:.4f}" if p.get("loss") is not None else ""
        console.print(f"  progress     step {p['step']}{total}{loss}")
    est = data.get("estimate") or {}
    quote = est.get("provider_quote") or {}
    line = f"  cost         estimate {_usd(est.get('train_usd'))}"
    if quote.get("available"):
        line += f", provider quote {_usd(quote.get('usd'))}"
    actual = data.get("actual") or {}
    if actual.get("usd") is not None:
        line += f", billed {_usd(actual['usd'])}"
        if actual.get("billed_tokens"):
            line += f" for {actual['billed_tokens']:,} tokens"
    console.print(line)
    if data.get("error"):
        console.print(f"  error        {escape(data['error'])}")
    for art in data.get("artifacts") or []:
        console.print(f"  artifact     {art['kind']}: {escape(art['uri'])}")
    for row in data.get("evals") or []:
        console.print(f"  eval         {escape(eval_line(row))}")
    if data["state"] not in ("succeeded", "failed", "cancelled"):
        console.print(f"  follow       tunegate logs {data['id']} --follow")
