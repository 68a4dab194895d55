"""Rich rendering for humans. Imported only by commands that print tables."""

from __future__ import annotations

from typing import Any

import yaml
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from gateway.cost.offer import RENTED
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
    for route in (r for r in result.prompt_only if r.wins):
        _prompt_row(table, route, days)
    for offer in result.offers:
        if not offer.feasible and offer.kind == RENTED and not show_all:
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
    for route in (r for r in result.prompt_only if not r.wins):
        _prompt_row(table, route, days)
    console.print(table)
    if hidden:
        console.print(f"[dim]{hidden} more rented-GPU offers are infeasible (--all shows them)[/]")
    console.print(escape(result.explain()))
    if result.sharing is not None:
        sharing(result.sharing)
    for warning in result.warnings:
        console.print(f"[yellow]note:[/] {escape(warning)}")


def _prompt_row(table: Table, route: Any, days: float) -> None:
    """A "no fine-tune" row: the base with a prompt, nothing to train (`Plan.prompt_only`)."""
    status = ("[green]wins: no fine-tune[/] " if route.wins else "[cyan]prompt only[/] ") + (
        f"[dim]({escape(route.status)})[/]"
    )
    table.add_row(
        "no fine-tune",
        escape(route.label),
        "$0",
        "-",
        "-",
        human_usd(route.serve_usd_month.likely * days / DAYS_PER_MONTH),
        _usd(route.total_usd),
        status,
        style="bold" if route.wins else None,
    )


def sharing(s: Any) -> None:
    """Serving alone vs on one fleet with the other fine-tunes of the base (engine groups)."""
    from gateway.util.units import human_count

    each = human_count(s.tokens_per_day)
    console.print(f"[bold]serving[/] at {each} tokens/day ({s.volume_source}):")
    if s.own is not None:
        console.print(f"  own fleet:     {_usd(s.own.usd_month)}/month  {escape(s.own.label)}")
    if s.shared is not None and s.adapters > 1:
        console.print(
            f"  shared fleet:  {_usd(s.shared.usd_month)}/month for {s.adapters} fine-tunes "
            f"({human_count(s.total_tokens_per_day)} tokens/day in all), this one's share "
            f"{_usd(s.share_usd_month)}/month  {escape(s.shared.label)}"
        )
    console.print(
        f"  one more fine-tune of this base at {each}/day on that fleet: "
        f"+{_usd(s.marginal_usd_month)}/month"
    )
    if s.breakeven_tokens_per_day:
        console.print(
            f"  break-even per fine-tune vs {human_usd(s.hosted_usd_per_1m)}/1M hosted: "
            f"~{human_count(s.breakeven_tokens_per_day)} tokens/day with {s.adapters} sharing "
            f"({escape(s.breakeven_fleet)})"
        )
    o = s.overhead
    console.print(
        f"  [dim]assumes {o.likely:.0%} ({o.low:.0%}-{o.high:.0%}) of a replica's throughput lost "
        f"to batching several adapters: {escape(s.overhead_source)}[/]"
    )


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
