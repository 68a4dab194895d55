"""`tunegate data check | convert | dedup | split`: the dataset toolkit from the command line."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from cli.common import emit_json, handle_errors
from gateway.data.formats import FORMATS
from gateway.data.hygiene import CONTAMINATION_NGRAM, NEAR_THRESHOLD
from gateway.spec.objectives import OBJECTIVES
from providers import HOSTED as PROVIDERS

IN_FILE = click.Path(exists=True, dir_okay=False, path_type=Path)


def _dataset_info(fn: Any) -> Any:
    """--dataset-info / --dataset: LLaMA-Factory's column mapping for the file."""
    fn = click.option(
        "--dataset",
        "dataset",
        help="Entry name in --dataset-info (default: the entry whose file_name is this file).",
    )(fn)
    return click.option(
        "--dataset-info",
        "dataset_info",
        type=IN_FILE,
        help="LLaMA-Factory dataset_info.json whose entry maps this file's columns and tags "
        "(one beside the file is used on its own).",
    )(fn)


def _mapping(path: Path, info: Path | None, name: str | None) -> Any:
    if info is None:
        return None
    from gateway.data.sharegpt import Mapping, dataset_entry

    return Mapping(dataset_entry(info, path, name))


@click.group("data")
def data_group() -> None:
    """Check, convert, deduplicate and split training data. Input files are never modified."""


@data_group.command("check")
@click.argument("path", type=IN_FILE)
@click.option("--base", help="Base model: enables its template's rules and real token counts.")
@click.option(
    "--eval",
    "eval_path",
    type=IN_FILE,
    help=f"Eval file to check for contamination ({CONTAMINATION_NGRAM}-gram overlap).",
)
@click.option(
    "--provider", type=click.Choice(PROVIDERS), help="Also apply this provider's file rules."
)
@click.option(
    "--format", "fmt", type=click.Choice(FORMATS), help="Force a format instead of detecting it."
)
@click.option(
    "--objective",
    type=click.Choice(OBJECTIVES),
    help="Also check that every example is a kind this objective trains on.",
)
@click.option(
    "--near-threshold", type=click.FloatRange(0.1, 1.0), default=NEAR_THRESHOLD, show_default=True
)
@click.option(
    "--ngram",
    type=click.IntRange(3, 50),
    default=CONTAMINATION_NGRAM,
    show_default=True,
    help="Contamination n-gram size.",
)
@click.option(
    "--limit",
    type=int,
    default=50,
    show_default=True,
    help="Findings shown per severity (all in --json).",
)
@click.option(
    "--plot",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also write the token histogram as a PNG.",
)
@_dataset_info
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@handle_errors
def check_cmd(
    path: Path,
    base: str | None,
    eval_path: Path | None,
    provider: str | None,
    fmt: str | None,
    objective: str | None,
    near_threshold: float,
    ngram: int,
    limit: int,
    plot: Path | None,
    dataset_info: Path | None,
    dataset: str | None,
    as_json: bool,
) -> None:
    """Format, errors by line, duplicates, contamination and token statistics. Exit 1 on errors.

    With --provider, the file is also checked as it would be uploaded there unchanged
    (container, name, record format); a shape-only failure names the `convert` that fixes it."""
    from gateway.data.checker import check

    report = check(
        path,
        base=base,
        eval_path=eval_path,
        provider=provider,
        fmt=fmt,
        near_threshold=near_threshold,
        ngram=ngram,
        mapping=_mapping(path, dataset_info, dataset),
        objective=objective,
    )
    if plot is not None:
        from gateway.data.plot import histogram_png

        histogram_png(report.tokens.histogram(20), plot, (report.tokens.percentile(0.95),))
    if as_json:
        emit_json(report.to_json())
    else:
        _print_check(report, limit)
    sys.exit(0 if report.ok else 1)


def _print_check(report: Any, limit: int) -> None:
    data = report.to_json()
    click.echo(
        f"{report.path}: {data['n_examples']} examples, format {data['format'] or 'unknown'}"
    )
    for severity, items in (("error", report.errors), ("warning", report.warnings)):
        for finding in items[:limit]:
            click.echo(finding.format(str(report.path)))
        if len(items) > limit:
            click.echo(f"... {len(items) - limit} more {severity}s (--json lists all)")
    for name, groups in (
        ("exact duplicates", data["exact_duplicates"]),
        ("near duplicates", data["near_duplicates"]),
    ):
        if groups:
            shown = "; ".join(",".join(map(str, g)) for g in groups[:10])
            click.echo(
                f"{name}: {len(groups)} groups (lines {shown}{' ...' if len(groups) > 10 else ''})"
            )
    for hit in data["contamination"][:limit]:
        click.echo(
            f'{report.path}:{hit["line"]}: contaminated: shares "{hit["ngram"]}" with eval line {hit["eval_line"]}'
        )
    tok = data["tokens"]
    label = "approximate" if tok["approximate"] else f"tokenizer of {tok['tokenizer']}"
    click.echo(
        f"tokens per example ({label}): mean {tok['mean']}, p50 {tok['p50']}, p95 {tok['p95']}, "
        f"p99 {tok['p99']}, max {tok['max']}; trained {tok['trained_total']:,} of {tok['total']:,}"
    )
    trunc = ", ".join(f">{k}: {v:.1%}" for k, v in tok["truncated_share"].items())
    click.echo(f"truncated at: {trunc}; suggested max_seq_len: {data['suggested_max_seq_len']}")
    for lo, hi, count in report.tokens.histogram():
        bar = "#" * round(40 * count / max(1, data["n_examples"]))
        click.echo(f"  {lo:>6}-{hi:<6} {count:>7} {bar}")
    for note in data["notes"]:
        click.echo(f"note: {note}")
    click.echo(f"{len(report.errors)} errors, {len(report.warnings)} warnings")


@data_group.command("convert")
@click.argument("path", type=IN_FILE)
@click.option(
    "--to",
    "target",
    required=True,
    help="openai, together, fireworks, bedrock, bedrock-conversation, mlx (a folder), trl, or a format name.",
)
@click.option(
    "-o",
    "--out",
    "out",
    required=True,
    type=click.Path(path_type=Path),
    help="Output file (folder for mlx).",
)
@click.option(
    "--valid", "valid", type=IN_FILE, help="Validation file (written as valid.jsonl for mlx)."
)
@click.option("--format", "fmt", type=click.Choice(FORMATS), help="Force the input format.")
@click.option("--base", help="Base model; with --to bedrock picks the record schema of its family.")
@_dataset_info
@click.option("--json", "as_json", is_flag=True)
@handle_errors
def convert_cmd(
    path: Path,
    target: str,
    out: Path,
    valid: Path | None,
    fmt: str | None,
    base: str | None,
    dataset_info: Path | None,
    dataset: str | None,
    as_json: bool,
) -> None:
    """Convert a dataset into what a backend takes; refuses files with errors, and stops at the
    first line the target cannot express (a tool call, a KTO label, an image) instead of
    dropping it."""
    from gateway.data.convert import convert
    from gateway.data.prepare import load_clean
    from providers import data_format

    target_name = data_format(target, base)
    loaded = load_clean(path, fmt=fmt, mapping=_mapping(path, dataset_info, dataset))
    valid_examples = load_clean(valid, fmt=fmt).examples if valid else None
    written = convert(loaded.examples, target_name, out, valid_examples)
    result = {
        "from": loaded.format,
        "to": target_name,
        "examples": len(loaded.examples),
        "written": [str(p) for p in written],
    }
    if as_json:
        emit_json(result)
    else:
        click.echo(
            f"{len(loaded.examples)} {loaded.format} examples -> {target_name}: {', '.join(result['written'])}"
        )


@data_group.command("dedup")
@click.argument("path", type=IN_FILE)
@click.option("-o", "--out", "out", required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--threshold",
    type=click.FloatRange(0.1, 1.0),
    default=NEAR_THRESHOLD,
    show_default=True,
    help="Near-duplicate Jaccard threshold.",
)
@click.option("--no-near", is_flag=True, help="Drop exact duplicates only.")
@click.option(
    "--min-tokens", type=int, help="Drop examples shorter than this (approximate tokens)."
)
@click.option("--max-tokens", type=int, help="Drop examples longer than this (approximate tokens).")
@click.option("--json", "as_json", is_flag=True)
@handle_errors
def dedup_cmd(
    path: Path,
    out: Path,
    threshold: float,
    no_near: bool,
    min_tokens: int | None,
    max_tokens: int | None,
    as_json: bool,
) -> None:
    """Write a cleaned copy (first of each duplicate group kept) and OUT.manifest.jsonl of every drop."""
    from gateway.data.dedup import dedup_file

    res = dedup_file(
        path,
        out,
        near=not no_near,
        threshold=threshold,
        min_tokens=min_tokens,
        max_tokens=max_tokens,
    )
    if as_json:
        emit_json(res.to_json())
    else:
        click.echo(
            f"kept {res.kept}, dropped {res.dropped} -> {res.out} (manifest: {res.manifest})"
        )


@data_group.command("split")
@click.argument("path", type=IN_FILE)
@click.option(
    "--val",
    "val",
    type=click.FloatRange(0.001, 0.999, min_open=True, max_open=True),
    default=0.1,
    show_default=True,
)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option(
    "-o",
    "--out",
    "out",
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder for train.jsonl and valid.jsonl (default: beside the input).",
)
@click.option("--json", "as_json", is_flag=True)
@handle_errors
def split_cmd(path: Path, val: float, seed: int, out: Path | None, as_json: bool) -> None:
    """Split into train.jsonl and valid.jsonl, never splitting a group of near duplicates."""
    from gateway.data.dedup import split_file

    result = split_file(path, out or path.parent / f"{path.stem}-split", val, seed)
    if as_json:
        emit_json(result)
    else:
        click.echo(f"train {result['train']}, valid {result['valid']} -> {result['folder']}")


@data_group.command("render")
@click.argument("path", type=IN_FILE)
@click.option(
    "--base",
    required=True,
    help="Base model whose tokenizer and chat template to use (local files only).",
)
@click.option(
    "-n",
    "count",
    type=click.IntRange(min=1),
    default=5,
    show_default=True,
    help="Samples to render.",
)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--json", "as_json", is_flag=True)
@handle_errors
def render_cmd(path: Path, base: str, count: int, seed: int, as_json: bool) -> None:
    """Show samples as the model sees them: trained tokens highlighted, masked ones dim; exit 1
    when a check fails (BOS count, end-of-turn token trained, pad distinct from eos)."""
    from gateway.data.render import render

    report = render(path, base, count, seed)
    general, samples, failed = report.problems, report.samples, report.failed
    if as_json:
        emit_json(report.to_json())
    else:
        from rich.console import Console
        from rich.text import Text

        console = Console(highlight=False)
        for sample in samples:
            console.print(f"[bold]{path}:{sample.line}[/] ([green]trained[/], [dim]masked[/])")
            text = Text()
            for piece, trained in sample.pieces:
                text.append(piece, style="green" if trained else "dim")
            console.print(text)
            for problem in sample.problems:
                console.print(f"[red]{path}:{sample.line}: {problem}[/]")
        for problem in general:
            console.print(f"[red]{base}: {problem}[/]")
    sys.exit(1 if failed else 0)
