"""`tunegate plan`: the cost table and the choice, from a job file or from numbers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from cli.common import emit_json, handle_errors
from gateway.spec.choices import METHODS, TASKS
from gateway.spec.objectives import OBJECTIVES
from providers import NAMES as PROVIDERS


@click.command("plan")
@click.argument("job", required=False)
@click.option("--base", help="Base model: HF id (base or instruct), alias, or local path.")
@click.option("--examples", type=click.IntRange(min=1), help="Number of training examples.")
@click.option(
    "--avg-tokens",
    type=click.FloatRange(min=1),
    help="Average tokens per example (DPO: both sequences).",
)
@click.option(
    "--epochs", type=click.FloatRange(min=0.01), help="Passes over the data (default: 1-3 by size)."
)
@click.option("--method", type=click.Choice(METHODS), help="Adapter method.")
@click.option("--objective", type=click.Choice(OBJECTIVES), help="Training objective.")
@click.option(
    "--reward",
    "rewards",
    multiple=True,
    help="GRPO reward (repeat): exact_match, contains, word_f1, json_valid, regex(P), module:fn.",
)
@click.option("--task", type=click.Choice(TASKS), help="Preset for rank/alpha.")
@click.option("--rank", type=click.IntRange(min=1), help="LoRA rank.")
@click.option("--alpha", type=click.FloatRange(min=0.01), help="LoRA alpha.")
@click.option("--max-seq-len", type=click.IntRange(min=16), help="Max tokens per example.")
@click.option("--batch-size", type=click.IntRange(min=1), help="Per-device batch size.")
@click.option(
    "--packing/--no-packing", default=None, help="Pack short examples into full sequences."
)
@click.option(
    "--hardware",
    help="What if the local providers ran on this hardware id (see `tunegate hardware`).",
)
@click.option("--serve", help="Serving volume, e.g. 2M/day (0 = not serving).")
@click.option(
    "--share-with",
    type=click.IntRange(min=0),
    help="Other fine-tunes of this base sharing the serving fleet, each at --serve volume "
    "(JOB-ID: default its engine group's live members, at their measured volume).",
)
@click.option(
    "--horizon-days", type=click.FloatRange(min=1), help="Days of serving to count (default 30)."
)
@click.option(
    "--always-on/--scale-to-zero",
    default=None,
    help="Self-hosted GPUs run 24/7 (default) or scale to zero.",
)
@click.option(
    "--local-only", is_flag=True, default=None, help="Data and model never leave this machine."
)
@click.option(
    "--max-usd", type=click.FloatRange(min=0.01), help="Refuse offers whose training costs more."
)
@click.option(
    "--deadline-hours",
    "--deadline",
    type=click.FloatRange(min=0.01),
    help="Refuse offers that take longer.",
)
@click.option("--providers", help=f"Comma-separated allow-list ({', '.join(PROVIDERS)}).")
@click.option("--all", "show_all", is_flag=True, help="Show every infeasible rented-GPU offer too.")
@click.option(
    "--show-spec", is_flag=True, help="Print the resolved job spec with where each value came from."
)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@handle_errors
def plan_cmd(job: str | None, show_all: bool, show_spec: bool, as_json: bool, **opts: Any) -> None:
    """Estimate cost, time and memory on every backend and pick the cheapest that fits.

    \b
    tunegate plan job.yaml --serve 2M/day
    tunegate plan --base meta-llama/Llama-3.1-8B-Instruct --examples 5000 --avg-tokens 600 \\
                  --epochs 2 --method qlora --json
    """
    from cli import render
    from gateway.facade.plan import plan
    from gateway.spec import JobSpec

    if job is not None and not Path(job).exists():
        return _plan_journaled(job, show_all, show_spec, as_json, opts)
    spec = JobSpec.from_options(Path(job) if job else None, **opts)
    result = plan(
        spec,
        examples=opts.get("examples"),
        avg_tokens=opts.get("avg_tokens"),
        hardware=opts.get("hardware"),
    )
    export = result.export_check
    axolotl = _axolotl(result) if show_spec or as_json else None
    if as_json:
        emit_json({**result.to_json(), **({"axolotl": axolotl} if axolotl else {})})
        return
    if show_spec:
        render.spec(result)
        if axolotl:
            render.axolotl(axolotl)
    render.plan(result, show_all=show_all)
    if any(not o.feasible or o.needs for o in result.offers):
        click.echo(
            "What this machine lacks (extras, GPU, keys) and the command that fixes each: "
            "tunegate doctor"
        )
    if export is not None:
        click.echo(f"\nexport {export.to} {export.quant or ''} (tunegate export --check for more):")
        for f in export.findings:
            mark = {True: "ok  ", False: "FAIL", None: "?   "}[f.ok]
            click.echo(f"  {mark} {f.check}: {f.detail}")


def _axolotl(result: Any) -> dict[str, Any] | None:
    """The Axolotl config of a job on the Axolotl route (several nodes, or asked for)."""
    from gateway.facade.plan import launcher_preview

    return launcher_preview(result)


def _plan_journaled(
    ref: str, show_all: bool, show_spec: bool, as_json: bool, opts: dict[str, Any]
) -> None:
    """`tunegate plan JOB-ID`: the journaled job, at the volume its deployments measured."""
    from cli import render
    from gateway.errors import SpecError, TunegateError
    from gateway.facade.advice import plan_job
    from gateway.journal import Journal
    from gateway.util.units import human_count

    serving = {k: opts.pop(k) for k in ("serve", "share_with", "horizon_days", "always_on")}
    given = sorted(k for k, v in opts.items() if v not in (None, ()))
    if given:
        flags = ", ".join("--" + k.replace("_", "-") for k in given)
        raise SpecError(
            f"{flags} cannot be combined with a journaled job",
            fix="plan a job file; a journaled job takes --serve, --share-with, --horizon-days, "
            "--always-on/--scale-to-zero",
        )
    try:
        with Journal() as journal:
            journal.get(ref)
    except TunegateError:
        raise SpecError(
            f"'{ref}' is neither a job file nor a job in the journal",
            fix="give a job file path, or a job id from `tunegate jobs`",
        ) from None
    result = plan_job(ref, serving={k: v for k, v in serving.items() if v is not None})
    if as_json:
        emit_json(result.to_json())
        return
    guess = human_count(result.guessed_tokens_per_day)
    if result.volume is None:
        click.echo(f"serving volume: no traffic measured yet; using the job's {guess} tokens/day")
    else:
        v = result.volume
        click.echo(
            f"serving volume: measured {human_count(v.tokens_per_day)} tokens/day over "
            f"{v.days:.1f} days ({v.requests:,} requests, {v.output_share:.0%} generated); "
            f"the job guessed {guess}/day"
        )
    if show_spec:
        render.spec(result.plan)
    render.plan(result.plan, show_all=show_all)
    for a in result.advice:
        click.echo(("cheaper: " if a.cheaper else "") + a.message)
