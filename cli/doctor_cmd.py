"""`tunegate doctor`: what this machine can do, and how to fix what is missing."""

from __future__ import annotations

import click

from cli.common import emit_json, handle_errors


@click.command("doctor")
@click.option("--ollama-host", help="Ollama server to probe (default: $OLLAMA_HOST or :11434).")
@click.option(
    "--clouds",
    is_flag=True,
    help="Ask SkyPilot which clouds it enabled and what GPUs cost there (cached for plan).",
)
@click.option(
    "--canary",
    is_flag=True,
    help="Run the isolation canary of every engine group (fine-tunes sharing one engine).",
)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@handle_errors
def doctor_cmd(ollama_host: str | None, clouds: bool, canary: bool, as_json: bool) -> None:
    """Check Python, each extra, the accelerator, llama.cpp, mlx-lm, an Ollama server, renting
    GPUs through SkyPilot (its interpreter, the bucket, enabled clouds), which provider
    credentials are set (names only, never values) and the tunegate home.

    Every missing piece says what it blocks and the command that fixes it. Exits 0: a missing
    optional piece is normal (most machines have no NVIDIA GPU); read `ok` in --json."""
    from gateway.facade.doctor import doctor

    checks = doctor(ollama_host=ollama_host, clouds=clouds, canary=canary)
    if as_json:
        emit_json({"checks": [c.to_json() for c in checks]})
        return
    from rich.console import Console
    from rich.markup import escape

    console = Console(highlight=False, soft_wrap=True)  # a fix is copied whole
    marks = {True: "[green]ok[/]  ", False: "[red]MISS[/]", None: "[yellow]--[/]  "}
    area = None
    for c in checks:
        if c.area != area:
            area = c.area
            console.print(f"[bold]{area}[/]")
        console.print(f"  {marks[c.ok]} {escape(c.name):<14} {escape(c.detail)}")
        if c.ok is not True and c.blocks:
            console.print(f"         blocks: {escape(c.blocks)}")
        if c.ok is not True and c.fix:
            console.print(f"         fix:    {escape(c.fix)}")
    missing = [c.name for c in checks if c.ok is False]
    if missing:
        console.print(f"missing: {', '.join(missing)} (each fix above)")
    else:
        console.print("everything tunegate uses on this machine is in place")
    console.print("credentials are read from the environment by name; values are never shown")
