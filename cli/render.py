"""Rich rendering for humans. Imported only by commands that print tables."""

from __future__ import annotations

from typing import Any

import yaml
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from gateway.facade.plan import Plan
from gateway.util.units import DAYS_PER_MONTH, Range, human_hours, human_usd

console = Console(highlight=False)
if not console.is_terminal:  # piped or captured: do not squeeze the table into 80 columns
    console = Console(highlight=False, width=160)


def _usd(r: Range) -> str:
    if r.high == 0:
        return "$0"
    if r.low == r.high:
        return human_usd(r.likely)
    return f"{human_usd(r.likely)} [dim]({human_usd(r.low)}-{human_usd(r.high)})[/]"


def _hours(r: Range) -> str:
    return "-" if r.high == 0 else human_hours(r.likely)


def plan(result: Plan, show_all: bool = False) -> None:
    days = result.spec.serving.horizon_days
    tok = result.tokens()
    name = (
        result.spec.base_model
        if result.spec.base_model == result.model.id
        else f"{result.spec.base_model} ({result.model.id})"
    )
    console.print(
        f"[bold]{escape(name)}[/] · {tok['examples']:,} examples x ~{tok['avg_tokens']:.0f} tokens x "
        f"{tok['epochs']:g} epochs · {result.spec.method}/{result.spec.objective} · this machine: "
        f"{result.machine.hardware_id} ({result.machine.name})"
    )
    table = Table(show_lines=False, header_style="bold")
    for col in (
        "provider",
        "hardware",
        "$ train",
        "hours",
        "VRAM",
        f"$ serve {days:g}d",
        f"total {days:g}d",
        "status",
    ):
        table.add_column(col, overflow="fold")
    hidden = 0
    for offer in result.offers:
        if not offer.feasible and offer.kind == "rented" and not show_all:
            hidden += 1
            continue
        vram = "-"
        if offer.vram_gb:
            fits = offer.memory_available_gb and offer.vram_gb.likely <= offer.memory_available_gb
            vram = f"{offer.vram_gb.likely:.1f}/{offer.memory_available_gb:.0f} GB" + (
                "" if fits else " [red]✗[/]"
            )
        status = "[green]ok[/]" if offer.feasible else f"[red]{escape(offer.reason)}[/]"
        if offer.feasible and offer.needs:
            status += f" [yellow]({escape('; '.join(offer.needs))})[/]"
        style = "bold" if offer is result.choice else ("dim" if not offer.feasible else None)
        table.add_row(
            offer.provider,
            offer.where,
            human_usd(offer.train_usd.likely),
            _hours(offer.train_hours),
            vram,
            human_usd(offer.serve_usd_month.likely * days / DAYS_PER_MONTH),
            _usd(offer.total_usd),
            status,
            style=style,
        )
    console.print(table)
    if hidden:
        console.print(f"[dim]{hidden} more rented-GPU offers are infeasible (--all shows them)[/]")
    console.print(escape(result.explain()))
    for warning in result.warnings:
        console.print(f"[yellow]note:[/] {escape(warning)}")


def spec(result: Plan) -> None:
    data = result.spec.to_yaml_dict()
    lines = yaml.safe_dump(data, sort_keys=False).splitlines()
    section = ""
    out = []
    for line in lines:
        if not line.startswith(" ") and line.endswith(":"):
            section = line[:-1]
        key = f"{section}.{line.strip().split(':')[0]}" if line.startswith("  ") else ""
        origin = result.origin.get(key)
        out.append(f"{line}  # {origin}" if origin else line)
    console.print("[bold]resolved spec[/] (# where each value came from)")
    console.print("\n".join(out), markup=False)
    console.print()


def axolotl(preview: dict[str, Any]) -> None:
    console.print("[bold]Axolotl config[/] (the multi-node route: `axolotl train` on each node)")
    if preview["problem"]:
        console.print(f"[red]refused:[/] {escape(preview['problem'])}")
        return
    console.print(yaml.safe_dump(preview["config"], sort_keys=False).rstrip(), markup=False)
    console.print()


def table(rows: list[dict[str, Any]], columns: list[str], title: str | None = None) -> None:
    t = Table(title=title, header_style="bold")
    for col in columns:
        t.add_column(col, overflow="fold")
    for row in rows:
        t.add_row(*[str(row.get(c, "")) for c in columns])
    console.print(t)
