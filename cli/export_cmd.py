"""`tunegate export`: a job's adapter (or any adapter/model folder) → verified merged model or
GGUF; `--check JOB.yaml` says before training whether that export will work."""

from __future__ import annotations

from pathlib import Path

import click

from cli.common import emit_json, handle_errors
from exporters.formats import EXPORT_TARGETS, GGUF_TYPES, MLX_GROUP_SIZES, MLX_TYPES
from gateway.spec.choices import SCORERS


@click.command("export")
@click.argument("source", required=False)
@click.option("--to", "to", type=click.Choice(EXPORT_TARGETS), default="gguf", show_default=True)
@click.option(
    "--quant",
    type=click.Choice([*GGUF_TYPES, *MLX_TYPES]),
    help="GGUF type (default f16), or MLX type for --to mlx (default float16).",
)
@click.option(
    "--group-size",
    type=click.Choice([str(n) for n in MLX_GROUP_SIZES]),
    default="64",
    show_default=True,
    help="MLX quantization group size.",
)
@click.option(
    "--adapter-only", is_flag=True, help="A GGUF LoRA / mlx-lm adapter instead of a whole model."
)
@click.option("--out", type=click.Path(path_type=Path), help="Output directory (must not exist).")
@click.option("--base", help="Base model (path or id); default: the one the adapter names.")
@click.option("--no-verify", is_flag=True, help="Skip the llama.cpp-vs-source check (not advised).")
@click.option(
    "--eval-data",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Task-eval the export against its source on these held-out examples "
    "(default: the job file's eval:).",
)
@click.option("--eval-scorer", type=click.Choice(SCORERS))
@click.option("--eval-pattern", help="--eval-scorer regex: the pattern whose match must agree.")
@click.option(
    "--max-drop",
    type=click.FloatRange(min=0, max=100),
    help="Points the export may lose on the task eval before it is refused (default 3).",
)
@click.option("--no-eval", is_flag=True, help="Skip the task eval of the export.")
@click.option("--split-max-size", help="Split GGUF output, e.g. 2G (f16/bf16/q8_0).")
@click.option(
    "--check",
    "check",
    type=click.Path(path_type=Path, exists=True, dir_okay=False),
    help="Check a job file's export path before training; exports nothing.",
)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@handle_errors
def export_cmd(
    source: str | None,
    to: str,
    quant: str | None,
    adapter_only: bool,
    out: Path | None,
    base: str | None,
    no_verify: bool,
    eval_data: Path | None,
    eval_scorer: str | None,
    eval_pattern: str | None,
    max_drop: float | None,
    no_eval: bool,
    split_max_size: str | None,
    group_size: str,
    check: Path | None,
    as_json: bool,
) -> None:
    """Export SOURCE (a job id, an adapter folder or a model folder) to a merged model, GGUF or
    MLX.

    The adapter is merged shard by shard into the 16-bit base, converted by llama.cpp's own
    converter (matched to the installed llama-cpp-python), quantized by llama.cpp, then loaded
    in llama.cpp and compared with the source on chat prompts. `--to mlx` converts with mlx-lm
    and checks in mlx-lm the same way. A job whose file has `eval:` (or --eval-data) is then
    task-evaluated on the export against the adapter, and refused past --max-drop points. The
    output appears under its name only when complete and verified; export.json beside it holds
    the report.

    \b
    tunegate export tg-1a2b --to gguf --quant q4_k_m
    tunegate export ./adapter --to gguf --adapter-only
    tunegate export tg-1a2b --to mlx --quant q4 --group-size 64
    tunegate export --check job.yaml
    """
    if check:
        _check(check, to, quant, adapter_only, int(group_size), as_json)
        return
    if not source:
        raise click.UsageError("give a SOURCE (job id or folder), or --check JOB.yaml")
    from gateway.facade.export import export

    journal = None
    if not Path(source).expanduser().exists():
        from cli.jobs_cmds import _journal

        journal = _journal()
    result = export(
        source,
        to,
        quant=quant,
        adapter_only=adapter_only,
        out=out,
        base=base,
        verify=not no_verify,
        split_max_size=split_max_size,
        group_size=int(group_size),
        progress=not as_json,
        journal=journal,
        task_eval=not no_eval,
        eval_data=eval_data,
        scorer=eval_scorer,
        pattern=eval_pattern,
        max_drop=max_drop,
    )
    if as_json:
        emit_json(result.to_json())
        return
    for f in result.files:
        click.echo(f"{result.kind}: {f}")
    v = result.verification
    if v is None:
        click.echo("not verified (--no-verify)")
        return
    line = f"verified: top-1 agreement {v.top1_agreement:.3f}, max |Δlogit| {v.max_abs_logit_delta:.4f}"
    if v.greedy_exact is not None:
        line += f", greedy continuations identical {v.greedy_exact:.0%}"
    click.echo(line)
    gate = result.task_eval
    if gate is not None:
        s = gate.stats
        click.echo(
            f"task eval ({gate.scorer}, {s.n} examples): source {s.base:.1f} -> export "
            f"{s.tuned:.1f} ({s.delta:+.1f}, 95% CI [{s.ci_low:+.1f}, {s.ci_high:+.1f}]; "
            f"allowed drop {gate.max_drop:g}); answers identical {gate.same_answers:.0%}"
        )
    click.echo(f"report: {result.path / 'export.json'}")


def _check(
    path: Path, to: str, quant: str | None, adapter_only: bool, group_size: int, as_json: bool
) -> None:
    from exporters.check import check_export
    from gateway.spec import JobSpec

    spec = JobSpec.from_yaml(path)
    ctx = click.get_current_context()
    explicit = ctx.get_parameter_source("to") != click.core.ParameterSource.DEFAULT
    result = check_export(
        spec,
        to=to if explicit else None,
        quant=quant,
        adapter_only=adapter_only or None,
        group_size=group_size
        if ctx.get_parameter_source("group_size") != click.core.ParameterSource.DEFAULT
        else None,
        deep=True,
    )
    if as_json:
        emit_json(result.to_json())
    else:
        label = f"{result.to}" + (f" {result.quant}" if result.quant else "")
        label += " adapter" if result.adapter_only else ""
        click.echo(f"export {label} of {result.base}:")
        marks = {True: "ok  ", False: "FAIL", None: "?   "}
        for f in result.findings:
            click.echo(f"  {marks[f.ok]} {f.check}: {f.detail}")
            if f.fix and f.ok is not True:
                click.echo(f"       fix: {f.fix}")
        click.echo("this export will work" if result.ok else "this export will NOT work as planned")
    if not result.ok:
        raise SystemExit(1)
