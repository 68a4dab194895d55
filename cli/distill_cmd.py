"""`tunegate distill`: a teacher's answers -> a dataset (gateway.facade.distill). Thin: parses,
calls, renders."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from cli.common import emit_json, handle_errors, parse_share


def _volume(text: str | None) -> int:
    if not text:
        return 0
    from gateway.util.units import parse_count

    try:
        return parse_count(text)
    except ValueError as exc:
        raise click.BadParameter(f"--serve {text!r}: {exc}; expected e.g. 2M/day") from None


def _config(path: Path | None) -> dict[str, Any]:
    if path is None:
        return {}
    import yaml

    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    if not isinstance(data, dict):
        raise click.BadParameter(f"{path}: expected a mapping (training:, lora:, ...)")
    return data


def _system(text: str | None) -> str | None:
    if text and text.startswith("@"):
        path = Path(text[1:])
        try:
            return path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise click.BadParameter(f"{path}: {exc}") from None
    return text


def _show(as_json: bool) -> Any:
    def show(stage: str, bill: Any) -> None:
        if as_json:
            return
        title = "the bill before any call" if stage == "before" else "the bill after the pilot"
        click.echo(f"{title}:", err=True)
        for line in bill.lines():
            click.echo(f"  {line}", err=True)

    return show


@click.command("distill")
@click.option(
    "--teacher", required=True, help="A deployment or alias, PROVIDER:MODEL, or URL#MODEL."
)
@click.option(
    "--prompts", type=click.Path(path_type=Path), help="Prompts: any format `data check` reads."
)
@click.option("--from-traffic", metavar="ALIAS", help="Prompts `tunegate serve` kept for ALIAS.")
@click.option("--since", help="With --from-traffic: 7d, 24h or a date.")
@click.option(
    "--eval",
    "eval_data",
    type=click.Path(path_type=Path),
    help="Leave out prompts that overlap this eval set.",
)
@click.option("--system", help="A system prompt for the teacher (text, or @FILE); not trained on.")
@click.option("--temperature", type=float, default=0.7, show_default=True)
@click.option("--top-p", type=float)
@click.option(
    "--max-tokens", type=click.IntRange(1), default=512, show_default=True, help="Per answer."
)
@click.option(
    "-n", "n", type=click.IntRange(1, 16), default=1, show_default=True, help="Answers per prompt."
)
@click.option("--seed", type=int)
@click.option(
    "--keep",
    metavar="RULE",
    help="Keep answers that pass: regex:RE, json, json:SCHEMA, exact, tool.",
)
@click.option("--min-tokens", type=click.IntRange(1))
@click.option("--max-answer-tokens", type=click.IntRange(1))
@click.option("--keep-refusals", is_flag=True, help="Do not drop answers that refuse.")
@click.option("--keep-truncated", is_flag=True, help="Do not drop answers cut at --max-tokens.")
@click.option("--keep-near-duplicates", is_flag=True)
@click.option("--judge", metavar="URL#MODEL", help="Keep only answers a judge passes (last rule).")
@click.option("--rubric", help="What the judge checks (text).")
@click.option("--judge-price", metavar="IN/OUT", help="The judge's USD per 1M tokens (default 0).")
@click.option("--max-judge-usd", type=float, default=1.0, show_default=True)
@click.option("--max-usd", type=float, help="Never spend more on the teacher (stops there).")
@click.option("--price", metavar="IN/OUT", help="USD per 1M tokens, when the catalog has none.")
@click.option(
    "--gateway",
    default="http://127.0.0.1:8765/v1",
    show_default=True,
    help="Where `tunegate serve` answers (deployment teachers).",
)
@click.option(
    "--accept-terms-risk", is_flag=True, help="Use a teacher whose terms forbid it (recorded)."
)
@click.option(
    "--heldout", default="10%", show_default=True, help="Prompts kept apart for the eval."
)
@click.option(
    "--out", type=click.Path(path_type=Path), help="Folder (default: distill-TEACHER-ID here)."
)
@click.option("--concurrency", type=click.IntRange(1, 64), default=4, show_default=True)
@click.option(
    "--pilot",
    type=click.IntRange(1),
    default=8,
    show_default=True,
    help="Calls that price the rest.",
)
@click.option("--student", metavar="BASE", help="Write job.yaml for this student.")
@click.option(
    "--serve",
    metavar="TOKENS/DAY",
    help="The student's volume, e.g. 2M/day: its plan and the cost comparison.",
)
@click.option(
    "--student-config",
    type=click.Path(exists=True, path_type=Path),
    help="YAML merged into the student's job file (training:, lora:, method: ...).",
)
@click.option("--backend", help="With --train: where the student trains (default: the plan's).")
@click.option(
    "--train", "train_now", is_flag=True, help="With --student: train it now, evaluate, report."
)
@click.option("--dry-run", is_flag=True, help="Show the bill; ask nothing.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@handle_errors
def distill_cmd(**o: Any) -> None:
    """A teacher answers your prompts; the good answers become a student's training set.

    The bill comes before the first call (and again after a small pilot); every answer is
    journaled as it arrives, so the same command after a crash or Ctrl-C asks only for what is
    missing; --max-usd stops it there. Answers pass the rejection rules (failed, empty, cut,
    refusals, --keep, near-duplicates); the folder gets train.jsonl, heldout.jsonl (teacher
    answers as references), provenance.json, report.md and, with --student, job.yaml.
    Docs: docs/distill.md.
    """
    from gateway.data.hygiene import NEAR_THRESHOLD
    from gateway.facade.distill import DistillOptions, JudgeRule, Rules, Settings, distill

    since = 0.0
    if o["since"]:
        from gateway.serve.usage import since_ts

        since = since_ts(o["since"])
    options = DistillOptions(
        teacher=o["teacher"], prompts=o["prompts"], from_traffic=o["from_traffic"], since=since,
        eval_data=o["eval_data"],
        settings=Settings(o["temperature"], o["top_p"], o["max_tokens"], _system(o["system"]),
                          o["n"], o["seed"]),
        rules=Rules(not o["keep_truncated"], not o["keep_refusals"], o["min_tokens"],
                    o["max_answer_tokens"], o["keep"], None if o["keep_near_duplicates"] else NEAR_THRESHOLD),
        judge=JudgeRule(o["judge"], o["rubric"], o["judge_price"], o["max_judge_usd"])
        if o["judge"] else None,
        max_usd=o["max_usd"], price=o["price"], gateway=o["gateway"],
        accept_terms_risk=o["accept_terms_risk"], heldout=parse_share(o["heldout"], zero=True), out=o["out"],
        concurrency=o["concurrency"], pilot=o["pilot"], student=o["student"],
        serve=_volume(o["serve"]), student_config=_config(o["student_config"]),
        dry_run=o["dry_run"], progress=not o["as_json"],
    )  # fmt: skip
    if o["train_now"] and not o["student"]:
        raise click.UsageError("--train needs --student BASE")
    result = distill(options, show=_show(o["as_json"]))
    student = None
    if o["train_now"] and not result.complete:
        click.echo("not training the student: the dataset is not complete (see above)", err=True)
    if o["train_now"] and result.complete:
        from gateway.facade.distill.student import train_student

        student = train_student(result, backend=o["backend"], progress=not o["as_json"])
    if o["as_json"]:
        emit_json({**result.to_json(), "student": student.to_json() if student else None})
        return
    _render(result, student)


def _render(result: Any, student: Any) -> None:
    for note in result.notes:
        click.echo(f"note: {note}", err=True)
    a, f = result.asked, result.filtered
    if a is None:
        return
    click.echo(
        f"teacher {result.teacher.ref}: {a.reused + a.answered}/{a.total} answered "
        f"({a.reused} from earlier runs), {a.failed} failed, ${a.spent_usd:.4f} spent"
    )
    if a.stopped_at_cap:
        click.echo("stopped at --max-usd: run the same command with a higher cap to go on")
    if a.interrupted:
        click.echo("interrupted: run the same command to go on (nothing answered is asked again)")
    if f is not None:
        dropped = ", ".join(f"{k} {v}" for k, v in f.counts().items() if v) or "none"
        click.echo(f"kept {len(f.kept)} examples; dropped: {dropped}")
    for name, path in result.files.items():
        click.echo(f"  {name}: {path}")
    if student is not None:
        for line in student.lines():
            click.echo(line)
