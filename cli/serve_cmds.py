"""`tunegate serve | usage | keys | aliases`: the OpenAI-compatible front door over every
deployment, what it measured, its API keys and budgets, and the names clients use."""

from __future__ import annotations

import time
from pathlib import Path

import click

from cli.common import emit_json, handle_errors


@click.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8765, show_default=True, type=click.IntRange(1, 65535))
@click.option(
    "--log-prompts",
    is_flag=True,
    help="Store each request's messages with its usage record (off: no prompt text is kept).",
)
@click.option(
    "--ft-model",
    metavar="BASE",
    help="The base model the fine-tuning API trains when a request says `model: auto`.",
)
@click.option(
    "--store",
    metavar="URL",
    envvar="TUNEGATE_STORE",
    help="postgresql://USER@HOST/DB shared by several replicas (default: the journal file;"
    " also TUNEGATE_STORE or serve.store in the config). docs/serve.md#replicas",
)
@handle_errors
def serve_cmd(
    host: str, port: int, log_prompts: bool, ft_model: str | None, store: str | None
) -> None:
    """Serve every live deployment behind one OpenAI-compatible API.

    Point any OpenAI client at http://HOST:PORT/v1 and use a deployment's name (or an alias)
    as the model. Local GGUF deployments run in llama-cpp-python's server, started on first
    use; hosted ones are called with the keys in this process's environment. Every request is
    metered into the journal (`tunegate usage`). It also serves OpenAI's fine-tuning API
    (`/v1/files`, `/v1/fine_tuning/jobs`) over tunegate's backends, and the dashboard at /ui
    (`tunegate ui`). Without API keys (`tunegate keys create`) it listens on loopback only.
    Docs: docs/serve.md, docs/ft-api.md, docs/ui.md.
    """
    from gateway.journal.db import resolve
    from gateway.journal.sql import safe_where
    from gateway.serve import serve

    where = safe_where(resolve(store))
    click.echo(f"tunegate serve: http://{host}:{port}/v1 (Ctrl-C stops); store: {where}", err=True)
    serve(host, port, log_prompts=log_prompts, ft_model=ft_model, journal_path=store)


@click.command("ui")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8765, show_default=True, type=click.IntRange(1, 65535))
@click.option(
    "--folder",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Where the Plan and Data pages pick job and data files (default: this folder).",
)
@handle_errors
def ui_cmd(host: str, port: int, folder: Path | None) -> None:
    """A local dashboard of jobs, costs, loss curves, evals and traffic, in the browser.

    The same server as `tunegate serve` (its /v1 API answers too), with the pages at /ui:
    jobs with live loss, estimate against actual cost and the eval verdicts; the plan's cost
    table and a chart of total cost against serving volume with the break-even marked; the
    data check of a file; traffic per deployment and key. Read-only from other machines
    unless the server's API key is given; every action shows the command that does the
    same. Docs: docs/ui.md.
    """
    from gateway.serve import serve

    click.echo(f"tunegate ui: http://{host}:{port}/ui/ (Ctrl-C stops)", err=True)
    serve(host, port, ui_folder=folder)


@click.command("usage")
@click.option(
    "--by",
    type=click.Choice(["deployment", "key", "arm"]),
    default="deployment",
    show_default=True,
    help="Group by deployment, API key, or A/B arm (tunegate ab).",
)
@click.option("--since", help="Window: 7d, 24h, 30m, 2w or a date (default: 30 days).")
@click.option(
    "--window-days",
    default=7.0,
    show_default=True,
    type=click.FloatRange(min=0.01),
    help="Days of traffic the break-even advice measures.",
)
@click.option("--no-advice", is_flag=True, help="Skip re-pricing the routes at measured volume.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@handle_errors
def usage_cmd(
    by: str, since: str | None, window_days: float, no_advice: bool, as_json: bool
) -> None:
    """What `tunegate serve` measured: requests, tokens, latency and cost, and whether another
    serving route has become cheaper at that volume."""
    from cli import render
    from gateway.facade.advice import advise
    from gateway.serve.usage import since_ts, usage

    report = usage(by=by, since=since_ts(since))  # type: ignore[arg-type]
    advice = [] if no_advice else advise(window_days=window_days)
    if as_json:
        emit_json({**report.to_json(), "advice": [a.to_json() for a in advice]})
        return
    if not report.rows:
        click.echo("no requests in the window; `tunegate serve` meters every request it answers")
    else:
        rows = [
            {
                by: r.group,
                "target": r.target or "",
                "requests": r.requests,
                "errors": r.errors,
                "fallbacks": r.fallbacks,
                "tokens in/out": f"{r.prompt_tokens:,}/{r.completion_tokens:,}"
                + (f" ({r.estimated} est.)" if r.estimated else ""),
                "p50/p99 ms": _ms(r.p50_ms, r.p99_ms),
                "cost": f"${r.usd:,.4f}" + (" (hours)" if r.hourly_usd else ""),
            }
            for r in report.rows
        ]
        render.table(rows, list(rows[0]), title=f"usage since {_when(report.since)}")
    for a in advice:
        click.echo(("cheaper: " if a.cheaper else "") + a.message)


def _ms(p50: float | None, p99: float | None) -> str:
    return "" if p50 is None else f"{p50:.0f}/{p99 or 0:.0f}"


def _when(ts: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(ts))


@click.group("keys")
def keys_group() -> None:
    """API keys for `tunegate serve` (stored as SHA-256; the secret is shown once)."""


@keys_group.command("create")
@click.argument("name")
@click.option("--budget", "budget", type=click.FloatRange(min=0), help="Monthly budget in USD.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@handle_errors
def keys_create(name: str, budget: float | None, as_json: bool) -> None:
    """Create a key; past its monthly budget, requests get an OpenAI-shaped 429."""
    from gateway.journal.serving import ServeStore

    with ServeStore() as store:
        key, secret = store.create_key(name, budget)
    if as_json:
        emit_json({**key.to_json(), "secret": secret})
        return
    click.echo(f"{key.id}  {name}  budget {_budget(key.monthly_budget_usd)}")
    click.echo(f"secret (shown once, not stored): {secret}")


@keys_group.command("list")
@click.option("--all", "show_all", is_flag=True, help="Include revoked keys.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@handle_errors
def keys_list(show_all: bool, as_json: bool) -> None:
    """Keys with their budgets and this month's metered spend."""
    from gateway.journal.serving import ServeStore
    from gateway.serve.meter import month_start

    with ServeStore() as store:
        keys, spend = store.keys(all=show_all), store.spend_since(month_start())
    rows = [{**k.to_json(), "spent_this_month_usd": round(spend.get(k.id, 0.0), 6)} for k in keys]
    if as_json:
        emit_json(rows)
        return
    if not rows:
        click.echo("no keys; `tunegate keys create NAME` makes one")
        return
    for r in rows:
        state = "active" if r["active"] else "revoked"
        click.echo(
            f"{r['id']}  {r['name']}  {r['prefix']}...  {state}  budget {_budget(r['monthly_budget_usd'])}"
            f"  spent ${r['spent_this_month_usd']:.4f} this month"
        )


@keys_group.command("revoke")
@click.argument("key")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@handle_errors
def keys_revoke(key: str, as_json: bool) -> None:
    """Revoke KEY (id, name or prefix); a running server stops accepting it within seconds."""
    from gateway.journal.serving import ServeStore

    with ServeStore() as store:
        revoked = store.revoke_key(key)
    if as_json:
        emit_json(revoked.to_json())
        return
    click.echo(f"{revoked.id}  {revoked.name}  revoked")


@keys_group.command("budget")
@click.argument("key")
@click.argument("usd", type=click.FloatRange(min=0), required=False)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@handle_errors
def keys_budget(key: str, usd: float | None, as_json: bool) -> None:
    """Set KEY's monthly budget to USD (leave USD out to remove the budget)."""
    from gateway.journal.serving import ServeStore

    with ServeStore() as store:
        changed = store.set_budget(key, usd)
    if as_json:
        emit_json(changed.to_json())
        return
    click.echo(f"{changed.id}  {changed.name}  budget {_budget(changed.monthly_budget_usd)}")


def _budget(value: float | None) -> str:
    return "none" if value is None else f"${value:,.2f}/month"


@click.group("aliases")
def aliases_group() -> None:
    """Names clients use, each an ordered list of deployments (the rest are fallbacks)."""


@aliases_group.command("set")
@click.argument("name")
@click.argument("deployments", nargs=-1, required=True)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@handle_errors
def aliases_set(name: str, deployments: tuple[str, ...], as_json: bool) -> None:
    """NAME answers with the first of DEPLOYMENTS (names or ids) that answers."""
    from gateway.journal.serving import ServeStore

    with ServeStore() as store:
        store.set_alias(name, list(deployments))
    if as_json:
        emit_json({"name": name, "deployments": list(deployments)})
        return
    click.echo(f"{name} -> {' -> '.join(deployments)}")


@aliases_group.command("list")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@handle_errors
def aliases_list(as_json: bool) -> None:
    """Every alias and its deployments, in fallback order."""
    from gateway.journal.serving import ServeStore

    with ServeStore() as store:
        aliases = store.aliases()
    if as_json:
        emit_json(aliases)
        return
    if not aliases:
        click.echo("no aliases; a deployment's name works as the model too")
    for name, deps in aliases.items():
        click.echo(f"{name} -> {' -> '.join(deps)}")


@aliases_group.command("remove")
@click.argument("name")
@handle_errors
def aliases_remove(name: str) -> None:
    """Remove an alias (the deployments stay)."""
    from gateway.errors import ServeError
    from gateway.journal.serving import ServeStore

    with ServeStore() as store:
        removed = store.remove_alias(name)
    if not removed:
        raise ServeError(f"no alias '{name}'", fix="`tunegate aliases list` shows them")
    click.echo(f"removed {name}")


@click.command("replicas")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@handle_errors
def replicas_cmd(as_json: bool) -> None:
    """The `tunegate serve` replicas alive on this store, and the engines each runs.

    Each replica writes a heartbeat every 5 s and removes it on a clean stop; one not seen
    for 15 s, or on this machine whose process has exited, is left out. Local engines (llama.cpp, MLX) run on the replica that started
    them. Docs: docs/serve.md#replicas.
    """
    from gateway.journal.replicas import alive
    from gateway.journal.serving import ServeStore

    with ServeStore() as store:
        found = alive(store)
    if as_json:
        emit_json([r.to_json() for r in found])
        return
    if not found:
        click.echo("no gateway replica is running on this store (`tunegate serve` starts one)")
    for r in found:
        engines = ", ".join(r.engines) or "no engine"
        click.echo(f"{r.id}  {r.address or '-'}  since {_when(r.started_at)}  engines: {engines}")
