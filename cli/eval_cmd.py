"""`tunegate eval`: the task eval of a fine-tune against its base (gateway.evaluate)."""

from __future__ import annotations

import json
from pathlib import Path

import click

from cli.common import emit_json, handle_errors


@click.command("eval")
@click.argument("target")
@click.option("--against", "against", help="The base to compare with (default: an adapter's base).")
@click.option(
    "--data",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    required=True,
    help="Held-out chat examples; the last assistant turn of each is the reference.",
)
@click.option(
    "--scorer",
    type=click.Choice(["exact", "regex", "json", "tool"]),
    default="exact",
    show_default=True,
)
@click.option("--pattern", help="--scorer regex: the pattern whose match must agree.")
@click.option(
    "--schema",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="--scorer json: a JSON Schema every answer must satisfy.",
)
@click.option("--limit", type=click.IntRange(min=1), help="Score only the first N examples.")
@click.option("--max-tokens", default=128, show_default=True, type=click.IntRange(min=1))
@click.option(
    "--train",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="The training file, for the contamination check.",
)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@handle_errors
def eval_cmd(
    target: str,
    against: str | None,
    data: Path,
    scorer: str,
    pattern: str | None,
    schema: Path | None,
    limit: int | None,
    max_tokens: int,
    train: Path | None,
    as_json: bool,
) -> None:
    """Score TARGET and its base on held-out examples, through the same backend.

    TARGET is an adapter or model folder, a GGUF, an MLX folder, a deployment, a job, or
    URL#MODEL. Answers are greedy and cached; the report (Markdown and JSON) is stored under
    $TUNEGATE_HOME/eval/reports. The verdict is ok / warn (a drop of 3+ points) / fail (10+)
    only when the 95% interval is clear of the threshold, else inconclusive. Docs: docs/eval.md.
    """
    from gateway.errors import SpecError
    from gateway.evaluate import task_eval

    schema_json = None
    if schema is not None:
        try:
            schema_json = json.loads(schema.read_text())
        except ValueError as exc:
            raise SpecError(f"{schema}: not JSON ({exc})") from None
    report = task_eval(
        target,
        data,
        against=against,
        scorer=scorer,
        pattern=pattern,
        schema=schema_json,
        limit=limit,
        max_tokens=max_tokens,
        train=train,
        progress=not as_json,
    )
    if as_json:
        emit_json(report.to_json())
        return
    click.echo(report.to_markdown())
    click.echo(f"report: {report.path}/report.md (and report.json)")
