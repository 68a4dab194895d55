"""`tunegate ab`: live A/B on an alias (gateway.facade.ab). Thin: parses, calls, renders."""

from __future__ import annotations

from typing import Any

import click

from cli.common import emit_json, handle_errors, parse_share


@click.group("ab")
def ab_group() -> None:
    """Does the candidate win on your traffic? Split an alias, read the verdict, promote."""


@ab_group.command("start")
@click.argument("alias")
@click.option("--candidate", required=True, help="The deployment (name or id) to try.")
@click.option("--share", default="10%", show_default=True, help="Its share of the alias's users.")
@click.option(
    "--margin",
    default=0.0,
    show_default=True,
    type=click.FloatRange(min=0, max=100),
    help="Points a win must clear (the interval's low end above it).",
)
@click.option(
    "--scorer",
    type=click.Choice(["exact", "regex", "json", "tool"]),
    help="Score answers whose request carries metadata.reference (a signal beside feedback).",
)
@click.option("--pattern", help="--scorer regex: the pattern whose match must agree.")
@click.option(
    "--shadow",
    is_flag=True,
    help="Clients keep the incumbent's answers; the candidate answers copies off the request "
    "path (metered apart).",
)
@click.option(
    "--max-usd",
    type=click.FloatRange(min=0),
    help="--shadow: stop sending copies once they have cost this much.",
)
@click.option(
    "--log-bodies",
    "log_bodies_days",
    type=click.FloatRange(min=0, min_open=True),
    metavar="DAYS",
    help="Keep each request's prompt and answer (redacted, never a key) for DAYS.",
)
@click.option("--judge", help="--shadow: a judge (URL#MODEL) of sampled shadow pairs.")
@click.option("--rubric", help="--judge: what a better answer is.")
@click.option("--judge-sample", default="10%", show_default=True, help="--judge: pairs judged.")
@click.option("--judge-price", help="--judge: USD per 1M tokens, IN/OUT (default 0: local).")
@click.option(
    "--max-judge-usd",
    default=1.0,
    show_default=True,
    type=click.FloatRange(min=0),
    help="--judge: stop judging once the estimated cost reaches this.",
)
@click.option(
    "--auto",
    is_flag=True,
    help="Let the gateway promote on a clear feedback win and roll back on a clear loss or "
    "an error-rate breach.",
)
@click.option(
    "--max-error-rate",
    default="5%",
    show_default=True,
    help="--auto: roll back when the candidate fails this much more often than the incumbent.",
)
@click.option(
    "--min-requests",
    default=30,
    show_default=True,
    type=click.IntRange(min=1),
    help="--auto: requests each arm needs before any decision.",
)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@handle_errors
def ab_start(
    alias: str,
    candidate: str,
    share: str,
    margin: float,
    scorer: str | None,
    pattern: str | None,
    shadow: bool,
    max_usd: float | None,
    log_bodies_days: float | None,
    judge: str | None,
    rubric: str | None,
    judge_sample: str,
    judge_price: str | None,
    max_judge_usd: float,
    auto: bool,
    max_error_rate: str,
    min_requests: int,
    as_json: bool,
) -> None:
    """Send SHARE of ALIAS's users to CANDIDATE, each user always to the same arm (their
    request's `user`, else their key, else their address). The alias's first deployment is the
    incumbent and the candidate's fallback. Docs: docs/serve.md#ab."""
    from gateway.facade import ab

    rules = ab.Auto(min_requests, parse_share(max_error_rate)) if auto else None
    exp = ab.start(
        alias,
        candidate,
        parse_share(share),
        margin=margin,
        auto=rules,
        shadow=shadow,
        max_usd=max_usd,
        scorer=scorer,
        pattern=pattern,
        log_bodies_days=log_bodies_days,
        judge=ab.Judge(judge, rubric, parse_share(judge_sample), judge_price, max_judge_usd)
        if judge
        else None,
    )
    if as_json:
        emit_json(exp.to_json())
        return
    how = "shadows" if shadow else "sends"
    click.echo(
        f"{exp.id}: {alias} {how} {exp.share:.0%} of its users to {candidate}; "
        f"read it with `tunegate ab status {alias}`"
    )


@ab_group.command("share")
@click.argument("alias")
@click.argument("share")
@handle_errors
def ab_share(alias: str, share: str) -> None:
    """Change the candidate's share while it runs (the gateway follows within seconds)."""
    from gateway.facade import ab

    exp = ab.set_share(alias, parse_share(share))
    click.echo(f"{exp.id}: {exp.share:.0%} of {exp.alias}'s users go to the candidate")


@ab_group.command("status")
@click.argument("alias")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@handle_errors
def ab_status(alias: str, as_json: bool) -> None:
    """Each arm's requests, failures, latency and cost, and the candidate's delta on each
    signal with an interval that stays valid however often you look."""
    from gateway.facade import ab

    now = ab.status(alias)
    if as_json:
        emit_json(now.to_json())
        return
    for line in status_lines(now):
        click.echo(line)


def status_lines(now: Any) -> list[str]:
    exp = now.experiment
    lines = [
        f"{exp.id} on {exp.alias}: {exp.state}, {exp.share:.0%} of users to the candidate",
        f"{'arm':<10} {'deployment':<16} {'requests':>8} {'failed':>6} {'p50 ms':>7} "
        f"{'p95 ms':>7} {'$/1k req':>9} {'scored':>6}",
    ]
    for arm in now.arms.values():
        p50 = f"{arm.p50_ms:.0f}" if arm.p50_ms is not None else "-"
        p95 = f"{arm.p95_ms:.0f}" if arm.p95_ms is not None else "-"
        cost = f"${arm.usd_per_1k:.4f}" if arm.usd_per_1k is not None else "-"
        lines.append(
            f"{arm.name:<10} {arm.deployment:<16} {arm.requests:>8} {arm.failures:>6} {p50:>7} "
            f"{p95:>7} {cost:>9} {arm.scored:>6}"
        )
    for name, d in now.signals.items():
        lines.append(
            f"{name}: incumbent {d.incumbent:.1f}, candidate {d.candidate:.1f}, delta "
            f"{d.delta:+.1f} points (always-valid 95% interval [{d.low:+.1f}, {d.high:+.1f}]): "
            f"{d.verdict}"
        )
    if exp.decision:
        lines.append(f"decided by {exp.decision.get('by')}: {exp.state}")
    return lines


@ab_group.command("bodies")
@click.argument("alias")
@handle_errors
def ab_bodies(alias: str) -> None:
    """The prompts and answers an experiment kept (--log-bodies), one JSON object a line."""
    import json

    from gateway.facade import ab

    for row in ab.bodies(alias):
        click.echo(json.dumps({k: v for k, v in row.items() if k != "prompt_json"}))


@ab_group.command("forget")
@click.argument("alias")
@handle_errors
def ab_forget(alias: str) -> None:
    """Delete every prompt and answer the experiment kept."""
    from gateway.facade import ab

    click.echo(f"deleted {ab.forget(alias)} kept bodies")


def _ending(name: str, doc: str) -> click.Command:
    @click.argument("alias")
    @click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
    @handle_errors
    def command(alias: str, as_json: bool) -> None:
        from gateway.facade import ab

        exp = getattr(ab, name)(alias)
        if as_json:
            emit_json(exp.to_json())
            return
        click.echo(f"{exp.id} on {exp.alias}: {exp.state}")

    command.__doc__ = doc
    return ab_group.command(name)(command)


_ending(
    "promote",
    "End it for the candidate: it answers the alias first, the incumbent is its fallback.",
)
_ending(
    "rollback",
    "End it for the incumbent: the alias stays as it was. After a promotion, undo it: the alias"
    " goes back to what it was, unless it changed since.",
)
_ending("stop", "End it without a decision: the alias stays as it was.")
