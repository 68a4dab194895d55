"""`tunegate migrate openai`: an OpenAI fine-tuning account's jobs, their data saved here, and
the open equivalents planned, in one table (gateway.facade.migrate)."""

from __future__ import annotations

from pathlib import Path

import click

from cli.common import emit_json, handle_errors
from gateway.facade.migrate import SOURCE


@click.group("migrate")
def migrate_group() -> None:
    """Move fine-tunes off a provider that is closing (OpenAI stops new jobs on 2027-01-06)."""


@migrate_group.command(SOURCE)
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("openai-migration"),
    show_default=True,
    help="Where the training files are saved (existing files are never overwritten).",
)
@click.option(
    "--serve",
    default="0",
    help="Serving volume to price where tunegate serve has measured none, e.g. 2M/day.",
)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@handle_errors
def migrate_openai_cmd(out: Path, serve: str, as_json: bool) -> None:
    """List the OpenAI account's fine-tuning jobs (OPENAI_API_KEY), download each training file,
    and plan its open alternatives (training, and serving at the measured volume).

    \b
    tunegate migrate openai --out data/ --serve 5M/day
    """
    from cli import render
    from gateway.facade.migrate import migrate_openai
    from gateway.util.units import human_count, human_usd, parse_count

    rows = migrate_openai(out, tokens_per_day=parse_count(serve))
    if as_json:
        emit_json([r.to_json() for r in rows])
        return
    if not rows:
        click.echo("no fine-tuning jobs in this OpenAI account")
        return
    table = []
    for r in rows:
        volume = human_count(r.tokens_per_day) + ("/day measured" if r.measured else "/day given")
        head = {
            "job": r.job_id,
            "status": r.status,
            "trained on": r.model,
            "examples": r.examples if r.examples is not None else "",
            "serving": volume,
        }
        if not r.alternatives:
            table.append({**head, "open alternative": r.note or ""})
        for i, alt in enumerate(r.alternatives):
            cells = head if i == 0 else {}
            if alt.route is None:
                table.append({**cells, "open alternative": alt.base, "route": alt.reason})
                continue
            table.append(
                {
                    **cells,
                    "open alternative": alt.base,
                    "route": alt.route,
                    "train": human_usd(alt.train_usd or 0),
                    "serve/month": human_usd(alt.serve_usd_month or 0),
                }
            )
    columns = ["job", "status", "trained on", "examples", "serving", "open alternative"]
    render.table(table, [*columns, "route", "train", "serve/month"], title="OpenAI fine-tunes")
    click.echo(f"training files saved under {out}; plan one with `tunegate plan --base BASE`")
