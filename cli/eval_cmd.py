"""`tunegate eval`: the task eval of a fine-tune against its base, and `tunegate eval compare`
(gateway.evaluate). `tunegate eval TARGET ...` is `tunegate eval task TARGET ...`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from cli.common import emit_json, handle_errors
from gateway.spec.choices import SCORERS


class _EvalGroup(click.Group):
    """`eval TARGET` runs the `task` subcommand; `eval compare A B` the comparison."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and not args[0].startswith("-"):
            args = ["task", *args]
        return super().parse_args(ctx, args)


@click.group("eval", cls=_EvalGroup)
def eval_group() -> None:
    """Did the fine-tune help? `tunegate eval TARGET --data F`, `tunegate eval compare A B`."""


JUDGE_OPTIONS = [
    click.option("--judge", help="The judge: URL#MODEL, a deployment, or a GGUF (started here)."),
    click.option("--rubric", help="What a good answer is (the judge's criterion)."),
    click.option("--judge-price", help="The judge's USD per 1M tokens, IN/OUT (default 0: local)."),
    click.option(
        "--max-judge-usd",
        default=1.0,
        show_default=True,
        type=click.FloatRange(min=0),
        help="Refuse to start when the judge's estimated cost is higher.",
    ),
]


DATA_OPTIONS = [
    click.option(
        "--data",
        type=click.Path(exists=True, dir_okay=False, path_type=Path),
        help="Held-out chat examples; the last assistant turn of each is the reference.",
    ),
    click.option("--pattern", help="--scorer regex: the pattern whose match must agree."),
    click.option("--limit", type=click.IntRange(min=1), help="Score only the first N examples."),
    click.option("--max-tokens", default=128, show_default=True, type=click.IntRange(min=1)),
]


def _options(options):  # type: ignore[no-untyped-def]
    def apply(fn):  # type: ignore[no-untyped-def]
        for option in reversed(options):
            fn = option(fn)
        return fn

    return apply


def _show(report: Any, as_json: bool) -> None:
    """Any eval report: its JSON, or its Markdown and where it is stored."""
    if as_json:
        emit_json(report.to_json())
        return
    click.echo(report.to_markdown())
    click.echo(f"report: {report.path}/report.md (and report.json)")


@eval_group.command("task")
@click.argument("target")
@click.option("--against", "against", help="The base to compare with (default: an adapter's base).")
@_options(DATA_OPTIONS)
@click.option(
    "--scorer",
    type=click.Choice([*SCORERS, "judge"]),
    default="exact",
    show_default=True,
)
@click.option(
    "--schema",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="--scorer json: a JSON Schema every answer must satisfy.",
)
@click.option(
    "--train",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="The training file: the contamination check, and where few-shot shots are drawn.",
)
@click.option(
    "--baseline",
    "baselines",
    multiple=True,
    metavar="few-shot:K|system:FILE",
    help="Also score the base with a prompt: K examples drawn from --train (a job: its own "
    "training file), or FILE as its system prompt; repeatable.",
)
@click.option(
    "--serve", help="Price each arm at this volume, e.g. 200k/day (default: a job's own)."
)
@click.option("--base", "base_model", help="The catalog base to price the arms for.")
@_options(JUDGE_OPTIONS)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@handle_errors
def eval_task_cmd(
    target: str,
    against: str | None,
    data: Path | None,
    scorer: str,
    pattern: str | None,
    schema: Path | None,
    limit: int | None,
    max_tokens: int,
    train: Path | None,
    baselines: tuple[str, ...],
    serve: str | None,
    base_model: str | None,
    judge: str | None,
    rubric: str | None,
    judge_price: str | None,
    max_judge_usd: float,
    as_json: bool,
) -> None:
    """Score TARGET and its base on held-out examples, through the same backend.

    TARGET is an adapter or model folder, a GGUF, an MLX folder, a deployment, a job, or
    URL#MODEL. Answers are greedy and cached; the report (Markdown and JSON) is stored under
    $TUNEGATE_HOME/eval/reports. The verdict is ok / warn (a drop of 3+ points) / fail (10+)
    only when the 95% interval is clear of the threshold, else inconclusive. Docs: docs/eval.md.

    A job given without --data runs the `eval:` of its job file again (as `train --wait` does
    when the job succeeds).

    Should you fine-tune at all? --baseline few-shot:5 (or system:PROMPT.txt) scores the base
    with that prompt too, gives the fine-tune's paired delta against it, each arm's tokens per
    request, and what each costs to serve at the job's volume (or --serve), with when the
    fine-tune pays for its training.
    """
    if data is None:
        _job_eval(target, as_json, list(baselines))
        return
    from gateway.facade.evaluate import task_eval

    report = task_eval(
        target,
        data,
        against=against,
        scorer=scorer,
        pattern=pattern,
        schema=schema,
        limit=limit,
        max_tokens=max_tokens,
        train=train,
        baselines=list(baselines),
        serve=serve,
        base_model=base_model,
        progress=not as_json,
        judge=judge,
        rubric=rubric,
        judge_price=judge_price,
        max_judge_usd=max_judge_usd,
    )
    _show(report, as_json)


def _job_eval(job: str, as_json: bool, baselines: list[str]) -> None:
    from cli.jobs_cmds import _journal
    from cli.render_jobs import eval_lines
    from gateway.facade.jobs import evaluate_job

    journal = _journal()
    done = evaluate_job(job, journal=journal, progress=not as_json, baselines=baselines or None)
    if as_json:
        emit_json(done.to_json())
        return
    for report in done.reports:
        click.echo(report.to_markdown())
    for line in eval_lines(journal, done.job_id, done.reports):
        click.echo(line)


@eval_group.command("compare")
@click.argument("a")
@click.argument("b")
@_options(DATA_OPTIONS)
@click.option(
    "--scorer",
    "scorers",
    multiple=True,
    type=click.Choice(SCORERS),
    help="Also give the paired delta of these scorers (repeatable).",
)
@_options(JUDGE_OPTIONS)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@handle_errors
def eval_compare_cmd(
    a: str,
    b: str,
    data: Path | None,
    scorers: tuple[str, ...],
    pattern: str | None,
    limit: int | None,
    max_tokens: int,
    judge: str | None,
    rubric: str | None,
    judge_price: str | None,
    max_judge_usd: float,
    as_json: bool,
) -> None:
    """A against B on the same examples: a judge in both orders (win / loss / tie /
    inconsistent), and the paired delta of each --scorer."""
    if data is None:
        raise click.UsageError("compare needs --data (held-out chat examples)")
    from gateway.facade.evaluate import compare

    report = compare(
        a,
        b,
        data,
        judge=judge,
        rubric=rubric,
        scorers=scorers,
        pattern=pattern,
        limit=limit,
        max_tokens=max_tokens,
        judge_price=judge_price,
        max_judge_usd=max_judge_usd,
        progress=not as_json,
    )
    _show(report, as_json)


@eval_group.command("regress")
@click.argument("target")
@click.option("--against", help="The base (default: an adapter's base).")
@click.option(
    "--suite",
    default="quick",
    show_default=True,
    help="quick, standard, or an lm-eval task YAML (or a folder of them).",
)
@click.option(
    "--limit", type=click.IntRange(min=1), help="Examples per task (default: the suite's)."
)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@handle_errors
def eval_regress_cmd(
    target: str, against: str | None, suite: str, limit: int | None, as_json: bool
) -> None:
    """Did the fine-tune break the base elsewhere? lm-eval on both, paired per example."""
    from gateway.facade.evaluate import regress

    report = regress(target, against=against, suite=suite, limit=limit)
    _show(report, as_json)


@eval_group.command("prefetch")
@click.option("--suite", default="quick", show_default=True)
@handle_errors
def eval_prefetch_cmd(suite: str) -> None:
    """Download a suite's datasets into the Hugging Face cache (needs the network once)."""
    from gateway.evaluate.regress import prefetch

    names = prefetch(suite)
    click.echo(f"cached: {', '.join(names)}")
