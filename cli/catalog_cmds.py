"""`tunegate models | hardware | prices`: what the catalog holds, and what is in force."""

from __future__ import annotations

import click

from cli.common import emit_json, handle_errors
from providers import HOSTED


@click.command("models")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@handle_errors
def models_cmd(as_json: bool) -> None:
    """Base models in the catalog: size, architecture, template, and where each can be tuned."""
    from gateway.catalog import load_catalog

    catalog = load_catalog()
    rows = []
    for m in catalog.models:
        rows.append(
            {
                "id": m.id,
                "variants": m.variants,
                "aliases": m.aliases,
                "params_b": None if m.closed else round(m.n_params / 1e9, 3),
                "closed": m.closed,
                "layers": m.layers or None,
                "hidden": m.hidden or None,
                "context": m.context or None,
                "chat_template": m.chat_template,
                "hosted": {k: v.id for k, v in m.hosted.items()},
                "source": m.source,
            }
        )
    if as_json:
        emit_json({"models": rows, "overrides": [str(p) for p in catalog.overrides]})
        return
    from cli import render

    for row in rows:
        row["params"] = "closed" if row["closed"] else f"{row['params_b']:g}B"
        row["tunable at"] = ", ".join(p for p in HOSTED if p in row["hosted"]) or "local only"
        row["ctx"] = f"{row['context']:,}" if row["context"] else "-"
    render.table(
        rows,
        ["id", "params", "ctx", "chat_template", "tunable at"],
        title="models (local backends tune every open model)",
    )


@click.command("hardware")
@click.option(
    "--here", is_flag=True, help="Detect this machine (nvidia-smi, sysctl, /proc) and show it."
)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@handle_errors
def hardware_cmd(here: bool, as_json: bool) -> None:
    """Accelerators in the catalog with memory, peak TFLOPS, bandwidth and rental prices."""
    from gateway.catalog import load_catalog
    from gateway.catalog.hardware import detect

    catalog = load_catalog()
    if here:
        machine = detect(catalog)
        if as_json:
            emit_json(machine.to_json())
            return
        click.echo(f"this machine: {machine.name}")
        click.echo(f"  kind: {machine.kind}  catalog id: {machine.hardware_id}")
        if machine.gpus:
            click.echo(f"  GPUs: {machine.gpus} x {machine.gpu_memory_gb:.1f} GB")
        click.echo(f"  CPU cores: {machine.cores}  RAM: {machine.ram_gb:.1f} GB")
        for note in machine.notes:
            click.echo(f"  note: {note}")
        return
    rows = []
    for hw in catalog.hardware.values():
        rent = hw.cheapest_rent()
        rows.append(
            {
                "id": hw.id,
                "name": hw.name,
                "vendor": hw.vendor,
                "memory_gb": hw.memory_gb,
                "peak_tflops": hw.peak_tflops,
                "bandwidth_gbs": hw.bandwidth_gbs,
                "watts": hw.watts,
                "rent": [r.model_dump() for r in hw.rent],
                "source": hw.source,
                "confidence": hw.confidence,
                "cheapest": f"${rent.usd_per_hour:.2f}/h {rent.cloud}" if rent else "-",
            }
        )
    if as_json:
        emit_json({"hardware": [{k: v for k, v in r.items() if k != "cheapest"} for r in rows]})
        return
    from cli import render

    render.table(
        rows, ["id", "memory_gb", "peak_tflops", "bandwidth_gbs", "cheapest"], title="hardware"
    )


@click.command("prices")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@handle_errors
def prices_cmd(as_json: bool) -> None:
    """Every price in force, with its source, date and confidence, and any user overrides."""
    import yaml

    from gateway.catalog import load_catalog

    catalog = load_catalog()
    data = {
        "prices": catalog.prices,
        "overrides": [str(p) for p in catalog.overrides],
        "unsourced": catalog.unsourced(),
    }
    if as_json:
        emit_json(data)
        return
    click.echo("# confidence: V verbatim source, S secondary, R recalled (verify), D derived")
    if catalog.overrides:
        click.echo("# overrides in force: " + ", ".join(map(str, catalog.overrides)))
    click.echo(yaml.safe_dump(catalog.prices, sort_keys=False, width=100))
