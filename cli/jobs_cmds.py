"""`tunegate train | jobs | status | logs | cancel | fetch`: launch and follow jobs.

Every command reads the journal (after start-up reconciliation), so a job launched from one
terminal can be followed, cancelled or fetched from any other.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from cli.common import emit_json, handle_errors
from providers import NAMES

BACKENDS = ("auto", *NAMES)


def _journal() -> Any:
    from gateway.facade.launch import open_journal

    journal, notes = open_journal()
    for note in notes:
        click.echo(f"reconcile: {note}", err=True)
    return journal


def _usd(value: Any) -> str:
    if isinstance(value, dict):
        value = value.get("likely")
    return f"${value:,.2f}" if isinstance(value, (int, float)) else "-"


@click.command("train")
@click.argument("job", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--backend", type=click.Choice(BACKENDS), default="auto", show_default=True)
@click.option(
    "--max-usd", type=click.FloatRange(min=0, min_open=True), help="Refuse to spend more than this."
)
@click.option(
    "--on",
    metavar="CLOUD",
    help="Rent a GPU through SkyPilot: a cloud (runpod, aws, gcp, lambda, ...) or `any`.",
)
@click.option("--yes", "-y", is_flag=True, help="Launch without asking (scripts, CI).")
@click.option("--wait/--no-wait", default=False, help="Follow the job until it ends.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@handle_errors
def train_cmd(
    job: Path,
    backend: str,
    max_usd: float | None,
    on: str | None,
    yes: bool,
    wait: bool,
    as_json: bool,
) -> None:
    """Plan, show the cost, ask, then launch JOB on the cheapest backend that fits.

    A rented GPU (the plan's unsloth/local offers on runpod, aws, ...) is launched as a
    SkyPilot managed job when SkyPilot and a bucket are set up (docs/scale-out.md); `--on`
    asks for one.

    \b
    tunegate train job.yaml                     # asks before anything is billed
    tunegate train job.yaml --backend together --yes --json
    tunegate train job.yaml --backend unsloth --on runpod
    """
    from gateway.facade.jobs import job_json
    from gateway.facade.launch import launch
    from gateway.facade.plan import plan
    from gateway.spec import JobSpec

    spec = JobSpec.from_yaml(job)
    if max_usd is not None:
        spec = spec.with_overrides({"constraints": {"max_usd": max_usd}})
    the_plan = plan(spec)

    def confirm(rec: Any, quote: dict[str, Any] | None) -> bool:
        est = (rec.estimate or {}).get("train_usd") or {}
        line = (
            f"{rec.provider}: tunegate estimates {_usd(est.get('likely'))} "
            f"({_usd(est.get('low'))}-{_usd(est.get('high'))}) to train {rec.base_model}"
        )
        if quote and quote.get("available"):
            line += f"; {rec.provider} quotes {_usd(quote.get('usd'))}"
        elif quote:
            line += f"; {rec.provider} gives no quote ({quote.get('reason')})"
        click.echo(line, err=True)
        return yes or click.confirm("launch it?", default=False, err=True)

    journal = _journal()
    handle = launch(the_plan, backend=backend, on=on, journal=journal, confirm=confirm)
    rec = handle.record
    if not as_json:
        click.echo(f"launched {rec.id} on {rec.provider} (remote {rec.remote_id})", err=True)
        click.echo(f"  follow: tunegate logs {rec.id} --follow", err=True)
    if wait:
        rec = handle.wait(progress=not as_json)
        _show_eval(handle, journal, as_json)
    if as_json:
        emit_json(job_json(rec, journal))


def _show_eval(job: Any, journal: Any, as_json: bool) -> None:
    """What `wait` ran of the job file's `eval:` (once; see docs/eval.md)."""
    done = job.evaluation
    if done is None or as_json:
        return
    from cli.render_jobs import eval_lines

    if done.error:
        click.echo(done.error, err=True)
    for line in eval_lines(journal, job.id, done.reports):
        click.echo(line)


@click.command("jobs")
@click.option("--state", help="Only jobs in this state.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@handle_errors
def jobs_cmd(state: str | None, as_json: bool) -> None:
    """List jobs from the journal, newest first."""
    from gateway.evaluate.reports import latest_verdicts
    from gateway.facade.jobs import job_json

    journal = _journal()
    records = journal.jobs(state=state)
    verdicts = latest_verdicts(journal)
    if as_json:
        emit_json([{**job_json(r), "eval": _verdict_json(verdicts.get(r.id))} for r in records])
        return
    from cli.render_jobs import jobs_table

    jobs_table(records, verdicts)


def _verdict_json(row: dict[str, Any] | None) -> dict[str, Any] | None:
    if row is None:
        return None
    return {"id": row["id"], "kind": row["kind"], "verdict": row["verdict"], "path": row["path"]}


@click.command("status")
@click.argument("job_id")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@handle_errors
def status_cmd(job_id: str, as_json: bool) -> None:
    """Poll a job once and show its state, progress, estimate and actual cost."""
    from gateway.facade.jobs import Job, job_json

    journal = _journal()
    job = Job(job_id, journal)
    data = job_json(job.status(), journal)
    if as_json:
        emit_json(data)
        return
    from cli.render_jobs import job_status

    job_status(data)


@click.command("logs")
@click.argument("job_id")
@click.option(
    "--follow", "-f", is_flag=True, help="Keep polling until the job ends (Ctrl-C stops)."
)
@click.option(
    "--tail",
    type=click.IntRange(min=1),
    help="Also print the last N lines the training process wrote (its log here, or "
    "SkyPilot's for a rented GPU).",
)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per event.")
@handle_errors
def logs_cmd(job_id: str, follow: bool, tail: int | None, as_json: bool) -> None:
    """Show a job's events (state changes, provider messages, loss) with a loss sparkline."""
    import json

    from cli.render_jobs import event_line, sparkline
    from gateway.facade.jobs import Job

    journal = _journal()
    job = Job(job_id, journal)
    losses: list[float] = []
    try:
        for ev in job.follow(live=follow):
            loss = (ev.data or {}).get("loss")
            if loss is not None:
                losses.append(float(loss))
            click.echo(json.dumps(ev.to_json()) if as_json else event_line(ev))
    except KeyboardInterrupt:
        click.echo(f"stopped following; {job.id} keeps running", err=True)
    if losses and not as_json:
        click.echo(f"loss {sparkline(losses)}  {losses[0]:.4f} -> {losses[-1]:.4f}")
    if tail:
        text = job.log_tail(tail)
        if as_json:
            click.echo(json.dumps({"log": text}))
        else:
            click.echo(f"-- the last {tail} lines it wrote --\n{text}" if text else "(no log)")


@click.command("cancel")
@click.argument("job_id")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@handle_errors
def cancel_cmd(job_id: str, as_json: bool) -> None:
    """Cancel a job (hosted providers bill the tokens already processed)."""
    from gateway.facade.jobs import Job, job_json

    journal = _journal()
    rec = Job(job_id, journal).cancel()
    if as_json:
        emit_json(job_json(rec, journal))
    else:
        click.echo(f"{rec.id}: {rec.state}")


@click.command("fetch")
@click.argument("job_id")
@click.option("-o", "--output", type=click.Path(path_type=Path), help="Directory to unpack into.")
@click.option(
    "--merged", is_flag=True, help="Merged weights instead of the LoRA adapter (Together)."
)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@handle_errors
def fetch_cmd(job_id: str, output: Path | None, merged: bool, as_json: bool) -> None:
    """Download and unpack a finished job's result (or show its hosted model id).

    Downloads resume where they stopped; archives are checked member by member before anything
    is written, and the SHA-256 is recorded in the journal."""
    from gateway.facade.jobs import Job

    journal = _journal()
    art = Job(job_id, journal).artifact(output, progress=not as_json, merged=merged)
    if as_json:
        emit_json(art.to_json())
        return
    click.echo(f"{art.kind}: {art.uri}")
    if art.sha256:
        click.echo(f"sha256 {art.sha256}  ({art.bytes:,} bytes downloaded)")


@click.command("resume")
@click.argument("job_id")
@click.option("--wait/--no-wait", default=False, help="Follow the job until it ends.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@handle_errors
def resume_cmd(job_id: str, wait: bool, as_json: bool) -> None:
    """Continue a failed or cancelled local job from its last checkpoint (step counter,
    optimizer, scheduler and RNG state carry on)."""
    from gateway.facade.jobs import Job, job_json

    journal = _journal()
    job = Job(job_id, journal)
    rec = job.resume()
    if not as_json:
        click.echo(
            f"resumed {rec.id} ({rec.remote_id}); follow: tunegate logs {rec.id} --follow", err=True
        )
    if wait:
        rec = job.wait(progress=not as_json)
        _show_eval(job, journal, as_json)
    if as_json:
        emit_json(job_json(rec, journal))
