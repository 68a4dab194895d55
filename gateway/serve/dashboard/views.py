"""What the dashboard's job and traffic pages show, built from the journal as plain dicts the
templates render. Nothing here is a second source of truth: every number is read from the
journal, the job folder or the usage records that the CLI reads too."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

from gateway.journal import TERMINAL, EventRecord, JobRecord, Journal
from gateway.util.units import human_count, human_hours, human_time, human_usd

SHOWN_EVENTS = 40


def _usd(value: Any) -> str:
    if isinstance(value, dict):
        value = value.get("likely", value.get("usd"))
    return human_usd(float(value)) if isinstance(value, int | float) else "-"


def _hours(value: Any) -> str:
    if isinstance(value, dict):
        value = value.get("likely")
    return human_hours(float(value)) if isinstance(value, int | float) else "-"


def _elapsed(rec: JobRecord) -> str:
    return human_hours((rec.finished_at - rec.created_at) / 3600) if rec.finished_at else "-"


def _progress(events: list[EventRecord]) -> dict[str, Any]:
    from gateway.facade.jobs import progress_of

    p = progress_of(events)
    loss = p["loss"]
    return {
        "step": p["step"],
        "total": p["total_steps"],
        "loss": None if loss is None else float(loss),
    }


def _verdict(row: dict[str, Any] | None) -> dict[str, Any] | None:
    from gateway.evaluate.reports import verdict_text  # the wording the CLI's table uses

    return None if row is None else {"verdict": row["verdict"], "label": verdict_text(row)}


def job_rows(journal: Journal) -> list[dict[str, Any]]:
    """The jobs table: every job with state, progress, estimate next to actual, verdict."""
    from gateway.evaluate.reports import latest_verdicts

    verdicts = latest_verdicts(journal)
    rows = []
    for rec in journal.jobs():
        p = _progress(journal.events(rec.id))
        est = rec.estimate or {}
        rows.append(
            {
                "id": rec.id,
                "name": rec.name,
                "provider": rec.provider,
                "state": rec.state,
                "step": p["step"],
                "total": p["total"],
                "base_model": rec.base_model,
                "created": human_time(rec.created_at),
                "estimate_usd": _usd(est.get("train_usd")),
                "actual_usd": _usd((rec.actual or {}).get("usd")),
                "estimate_time": _hours(est.get("train_hours")),
                "actual_time": _elapsed(rec),
                "eval": _verdict(verdicts.get(rec.id)),
            }
        )
    return rows


def points(events: list[EventRecord]) -> list[list[float | None]]:
    """[step, loss, eval_loss] rows from metric events (local and hosted alike), one row per
    step: a step's training and validation losses often arrive as two events."""
    by_step: dict[float, list[float | None]] = {}
    for ev in events:
        data = ev.data or {}
        if ev.step is None or (data.get("loss") is None and data.get("eval_loss") is None):
            continue
        row = by_step.setdefault(float(ev.step), [float(ev.step), None, None])
        if data.get("loss") is not None:
            row[1] = float(data["loss"])
        if data.get("eval_loss") is not None:
            row[2] = float(data["eval_loss"])
    return [by_step[k] for k in sorted(by_step)]


def live(journal: Journal, rec: JobRecord, after: int = 0, every: float = 2.0) -> dict[str, Any]:
    """The live panel: state, progress, recent events, and the loss points newer than `after`
    (an event id), so the page's chart only appends."""
    events = journal.events(rec.id)
    p = _progress(events)
    return {
        "id": rec.id,
        "state": rec.state,
        "terminal": rec.state in TERMINAL,
        "step": p["step"],
        "total": p["total"],
        "loss": p["loss"],
        "error": rec.error,
        "every": every,
        "last": events[-1].id if events else 0,
        "new_points": points([e for e in events if e.id > after]),
        "n_events": len(events),
        "events": [
            {
                "time": dt.datetime.fromtimestamp(e.ts).strftime("%H:%M:%S"),
                "kind": e.kind,
                "message": e.message,
            }
            for e in reversed(events[-SHOWN_EVENTS:])
        ],
    }


def _spec_rows(spec: dict[str, Any]) -> list[tuple[str, str, str]]:
    origin = spec.get("_origin") or {}
    rows: list[tuple[str, str, str]] = []

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, dict) and value:
            for key, sub in value.items():
                walk(f"{prefix}.{key}" if prefix else key, sub)
            return
        if value is None or value == [] or value == {}:
            return
        shown = json.dumps(value) if isinstance(value, list | bool) else str(value)
        rows.append((prefix, shown, origin.get(prefix, "job" if prefix else "")))

    walk("", {k: v for k, v in spec.items() if not k.startswith("_")})
    return rows


def _checkpoints(rec: JobRecord) -> list[dict[str, Any]]:
    jobdir = (rec.remote or {}).get("jobdir")
    if not jobdir or not Path(jobdir).is_dir():
        return []
    from providers.jobdir import JobDir

    done = JobDir(Path(jobdir)).complete_checkpoints()
    return sorted(
        ({"step": int(p.name.rsplit("-", 1)[1]), "path": str(p)} for p in done),
        key=lambda c: c["step"],
    )


def job_page(journal: Journal, rec: JobRecord) -> dict[str, Any]:
    """Everything the job page shows, with the actions this job's state allows."""
    from gateway.evaluate.reports import describe  # one wording, terminal and page alike

    events = journal.events(rec.id)
    est, actual = rec.estimate or {}, rec.actual or {}
    quote = est.get("provider_quote") or {}
    evals = []
    for row in journal.evals(rec.id):
        folder = Path(row["path"])
        evals.append(
            {
                **row,
                "line": describe(row).rsplit("; report ", 1)[0],
                "chart": (folder / "deltas.png").is_file(),
                "arms": eval_arms(row.get("summary") or {}),
                "sentences": ((row.get("summary") or {}).get("cost") or {}).get("sentences") or [],
            }
        )
    return {
        "job": {
            "id": rec.id,
            "name": rec.name,
            "provider": rec.provider,
            "base_model": rec.base_model,
            "objective": rec.kind,
            "created": human_time(rec.created_at),
        },
        "points": points(events),
        "cost": {
            "estimate": _range(est.get("train_usd")),
            "quote": _usd(quote.get("usd")) if quote.get("available") else None,
            "actual": _usd(actual.get("usd")),
            "estimate_time": _hours(est.get("train_hours")),
            "actual_time": _elapsed(rec),
            "serve_month": _usd(est.get("serve_usd_month")),
        },
        "evals": evals,
        "checkpoints": _checkpoints(rec),
        "artifacts": journal.artifacts(rec.id),
        "spec": _spec_rows(rec.spec or {}),
        "actions": actions(rec, journal),
    }


def eval_arms(summary: dict[str, Any]) -> list[dict[str, str]]:
    """A task eval's arms as table rows: the fine-tune, the base and each prompt baseline,
    with score, the fine-tune's paired delta, tokens per request and serving $/month."""
    if not summary.get("arms"):
        return []
    usage = summary.get("usage") or {}
    priced = (summary.get("cost") or {}).get("arms") or {}

    def row(name: str, label: str, score: float, stats: dict[str, Any] | None) -> dict[str, str]:
        u, c = usage.get(name) or {}, priced.get(name) or {}
        return {
            "label": label,
            "score": f"{score:.1f}",
            "delta": f"{stats['delta']:+.1f}" if stats else "",
            "ci": f"[{stats['ci_low']:+.1f}, {stats['ci_high']:+.1f}]" if stats else "",
            "says": stats.get("says", "") if stats else "",
            "prompt": f"{u['prompt']:,.0f}" if u.get("prompt") is not None else "n/a",
            "usd_month": _usd(c.get("usd_month")) or "-",
        }

    base = {k: summary.get(k) for k in ("delta", "ci_low", "ci_high")}
    out = [
        row("tuned", "fine-tune", summary.get("tuned", 0.0), None),
        row("base", "base", summary.get("base", 0.0), {**base, "says": ""}),
    ]
    out += [row(a["name"], a["label"], a["base"], a) for a in summary["arms"]]
    return out


def _range(value: Any) -> str:
    if not isinstance(value, dict):
        return "-"
    return f"{_usd(value.get('likely'))} ({_usd(value.get('low'))}-{_usd(value.get('high'))})"


def _targets_by_host() -> dict[str, list[str]]:
    """Every registered deploy target, grouped by who runs it (`Deployer.hosts`)."""
    from exporters.deploy import DEPLOYERS, get_deployer

    out: dict[str, list[str]] = {"self": [], "hosted": []}
    for target in DEPLOYERS:
        out[get_deployer(target).hosts].append(target)
    return out


def _resumable(provider: str) -> bool:
    from providers import REGISTRY, get_provider
    from providers.base import Resumable

    return provider in REGISTRY and isinstance(get_provider(provider), Resumable)


def actions(rec: JobRecord, journal: Journal) -> list[dict[str, Any]]:
    """What may be done to the job now, each with the exact command that does the same."""
    from providers import HOSTED, serving_target

    out: list[dict[str, Any]] = []
    if rec.state not in TERMINAL:
        costs = (
            "Hosted providers bill the tokens already processed." if rec.provider in HOSTED else ""
        )
        out.append(
            {
                "name": "cancel",
                "label": "Cancel",
                "command": f"tunegate cancel {rec.id}",
                "what": "Stops the job; its checkpoints stay, so it can be resumed.",
                "costs": costs,
                "fields": [],
            }
        )
    if rec.state in ("failed", "cancelled") and _resumable(rec.provider):
        out.append(
            {
                "name": "resume",
                "label": "Resume",
                "command": f"tunegate resume {rec.id}",
                "what": "Continues from the newest complete checkpoint on this machine.",
                "costs": "",
                "fields": [],
            }
        )
    if rec.state == "succeeded":
        from exporters.formats import EXPORT_TARGETS, GGUF

        out.append(
            {
                "name": "export",
                "label": "Export",
                "command": f"tunegate export {rec.id} --to {GGUF} --quant q4_k_m",
                "what": "Merges, converts and verifies in the background; the result appears "
                "under Artifacts and in the events.",
                "costs": "",
                "fields": [
                    {
                        "name": "to",
                        "label": "to",
                        "value": GGUF,
                        "choices": list(EXPORT_TARGETS),
                    },
                    {"name": "quant", "label": "quant", "value": "q4_k_m", "choices": []},
                ],
            }
        )
        hosts, to = _targets_by_host(), serving_target(rec.provider)
        out.append(
            {
                "name": "deploy",
                "label": "Deploy",
                "command": f"tunegate deploy {rec.id} --to {to} --name {rec.name or rec.id}",
                "what": "Registers the model where it answers; it is then served by tunegate serve.",
                "costs": f"A hosted target ({', '.join(hosts['hosted'])}) bills for serving; "
                f"local ones ({', '.join(hosts['self'])}) cost this machine's power.",
                "fields": [
                    {
                        "name": "to",
                        "label": "to",
                        "value": to,
                        "choices": [*hosts["self"], *hosts["hosted"]],
                    },
                    {"name": "name", "label": "name", "value": rec.name or rec.id, "choices": []},
                ],
            }
        )
    return out


def traffic(journal_path: Path | str | None = None, window_days: float = 7.0) -> dict[str, Any]:
    """Tokens and dollars a day per deployment and per key over the window, and the advice."""
    import time

    from gateway.facade.advice import advise
    from gateway.journal.deployments import deployments
    from gateway.journal.replicas import alive
    from gateway.journal.serving import ServeStore
    from gateway.serve.usage import usage

    since = time.time() - window_days * 86_400
    tables = {}
    for by in ("deployment", "key"):
        report = usage(journal_path, by=by, since=since)  # type: ignore[arg-type]
        days = max((report.until - report.since) / 86_400, 1e-9)
        tables[by] = [
            {
                "group": r.group,
                "target": r.target or "",
                "requests": r.requests,
                "errors": r.errors,
                "tokens_day": human_count(r.tokens / days),
                "usd_day": human_usd(r.usd / days),
                "price": r.price,
                "p50": "-" if r.p50_ms is None else f"{r.p50_ms:.0f} ms",
            }
            for r in report.rows
        ]
    with Journal(journal_path) as journal:
        deps = [{**d.to_json(), "created": human_time(d.created_at)} for d in deployments(journal)]
    advice = [a.to_json() for a in advise(journal_path, window_days=window_days)]
    with ServeStore(journal_path) as store:
        replicas = [
            {**r.to_json(), "since": human_time(r.started_at), "seen": human_time(r.seen_at)}
            for r in alive(store)
        ]
    return {"window_days": window_days, "tables": tables, "deployments": deps, "advice": advice,
            "replicas": replicas}  # fmt: skip


def experiment_rows(journal_path: Path | str | None) -> list[dict[str, Any]]:
    """`tunegate ab status` of every experiment, newest first, as the page shows it."""
    from gateway.facade import ab
    from gateway.journal.experiments import Experiments
    from gateway.journal.serving import ServeStore

    with ServeStore(journal_path) as store:
        found = Experiments(store).all()
    out = []
    for exp in reversed(found):
        now = ab.status(exp.id, journal_path=journal_path)
        arms = [
            {
                **a.to_json(),
                "p50": f"{a.p50_ms:.0f} ms" if a.p50_ms is not None else "-",
                "p95": f"{a.p95_ms:.0f} ms" if a.p95_ms is not None else "-",
                "per_1k": f"${a.usd_per_1k:.4f}" if a.usd_per_1k is not None else "-",
            }
            for a in now.arms.values()
        ]
        out.append(
            {
                "exp": exp.to_json(),
                "arms": arms,
                "signals": {k: d.to_json() for k, d in now.signals.items()},
                "why": (exp.decision or {}).get("why"),
                "by": (exp.decision or {}).get("by"),
                "started": human_time(exp.created_at),
            }
        )
    return out


def distill_rows(journal_path: Path | str | None) -> list[dict[str, Any]]:
    """What every teacher was asked and paid (`tunegate distill`), as the page shows it."""
    from gateway.journal import Journal
    from gateway.journal.teacher import teacher_spend

    with Journal(journal_path) as journal:
        rows = teacher_spend(journal)
    return [
        {
            **r,
            "settings": r["settings_sha"][:10],
            "spent": f"${r['usd']:.4f}",
            "last_seen": human_time(r["last"]) if r["last"] else "-",
        }
        for r in rows
    ]
