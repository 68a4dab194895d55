"""Deployments: a fine-tune put where it can answer, recorded in the journal, and one way to
talk to any of them (`chat`), so a user can smoke-test every target the same way.

This facade resolves the source (`gateway.facade.sources`), journals pending → live | failed, and
dispatches through `exporters.deploy.DEPLOYERS`; everything target-specific lives in that
target's module (Ollama, llama.cpp, OpenAI, Together, Fireworks, Bedrock).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from exporters.deploy import TARGETS, get_deployer
from exporters.deploy.base import DeployOptions, DeploySource, Prepared, Shares, Wants
from exporters.formats import GGUF, MERGED, MLX
from exporters.mlx import is_mlx
from gateway.errors import DeployError, JobError, VerificationError
from gateway.journal import Journal

# the journal side, re-exported: callers import Deployment, deployments, chat replies from here
from gateway.journal.deployments import ChatReply, Deployment, get_deployment
from gateway.journal.deployments import deployments as deployments

__all__ = ["TARGETS", "ChatReply", "Deployment", "chat", "deploy", "deployments", "undeploy"]
AUTO_QUANT = "q4_k_m"  # what deploying a job to a GGUF target exports, as Ollama users run
AUTO_MLX = "q4"  # what deploying a job to --to mlx exports, as mlx-community publishes models
ACCOUNTING = ("accrued_usd", "status_at", "replicas_alive")  # `live_status`'s running cost


def deploy(
    source: Any,
    to: str,
    *,
    name: str | None = None,
    system: str | None = None,
    template: str | None = None,
    stops: list[str] | None = None,
    host: str | None = None,
    progress: bool = False,
    engine: str = "auto",
    on: str | None = None,
    serve: float | None = None,
    spot: bool = False,
    scale_to_zero: bool = False,
    journal: Journal | None = None,
) -> Deployment:
    """Deploy `source` (a job id, artifact id, `Artifact`, GGUF file or export folder) to `to`.

    `engine` is for targets whose engine holds several adapters of one base (llama.cpp):
    `auto` puts a LoRA fine-tune in its base's engine when it can, and on its own with the
    reason when it cannot; `shared` insists; `own` gives it an engine of its own."""
    from gateway.facade.sources import for_deploy

    journal = journal or Journal()
    deployer = get_deployer(to)
    options = DeployOptions(
        system, template, stops, host, progress, engine, on, serve, spot, scale_to_zero
    )
    extra = sorted(options.given() - deployer.options)
    if extra:
        flags = ", ".join("--" + ("stop" if k == "stops" else k) for k in extra)
        takes = [t for t in TARGETS if set(extra) <= get_deployer(t).options]
        raise DeployError(
            f"{flags} do(es) not apply to --to {to}",
            fix=f"they apply to --to {' or '.join(takes)}" if takes else None,
        )
    src = for_deploy(source, journal)
    same = _same(journal, to, src, name) if getattr(deployer, "resumable", False) else None
    if same is not None and same.state == "pending":  # cut off after its remote step began
        return _resume(journal, same, deployer)
    live = tuple(d for d in deployments(journal) if d.target == to and d.state == "live")
    src = replace(src, peers=live, same=same)  # a live `same` is changed in place
    wants = deployer.wants_for(src, options) if hasattr(deployer, "wants_for") else deployer.wants
    if isinstance(deployer, Shares) and wants == "gguf-adapter":
        src, wants = _adapter(src, deployer, options, journal)
    src = _ready(src, wants, journal, progress)
    why = deployer.accepts(src)
    if why:
        raise DeployError(why)
    prepared = deployer.prepare(src, name, options)
    if src.notes:  # e.g. the smaller quants that failed verification, kept with the deployment
        prepared.meta = {**prepared.meta, "export_notes": list(src.notes)}
    if same is not None:
        return _resume(journal, same, deployer, prepared)
    return _record(journal, to, prepared, deployer.deploy)


def _adapter(
    src: DeploySource, deployer: Any, options: DeployOptions, journal: Journal
) -> tuple[DeploySource, Wants]:
    """A fine-tune that may join its base's engine: its adapter checked (`join_problems`),
    then exported to a GGUF adapter (verified, journaled); one that cannot join goes on its
    own (`auto`) with the reason, or is refused (`shared`)."""
    from exporters.record import read

    record = read(src.path) if src.path is not None else None
    if record is not None and record.kind == "gguf-adapter":
        return src, "gguf-adapter"
    folder = src.path if src.path is not None else Path(src.fetch().uri)  # type: ignore[misc]
    problems = deployer.join_problems(folder)
    if problems:
        if options.engine == "shared":
            raise DeployError(f"cannot join the base's engine: {problems[0]}")
        return replace(src, alone_because=problems[0]), deployer.wants
    if src.job is not None:
        rows = [a for a in journal.artifacts(src.job.id) if a["kind"] == "gguf-adapter"]
        if rows:
            return replace(src, path=Path(rows[-1]["uri"]), artifact_id=rows[-1]["id"]), (
                "gguf-adapter"
            )
        result = _export(src.job.id, "gguf", journal, options.progress, adapter_only=True)
    else:
        out = folder.parent / f"{folder.name}-gguf-adapter"
        made = read(out)
        if made is not None and made.kind == "gguf-adapter":
            return replace(src, path=next(out.glob("*.gguf"))), "gguf-adapter"
        result = _export(folder, "gguf", journal, options.progress, out=out, adapter_only=True)
    return replace(src, path=result.files[0], artifact_id=result.artifact_id), "gguf-adapter"


def _ready(src: DeploySource, wants: Wants, journal: Journal, progress: bool) -> DeploySource:
    """The source as the target wants it: a GGUF, merged weights or an MLX folder, exported
    first (verified, gated, journaled) when the job has none yet."""
    if wants == GGUF:
        return _gguf(src, journal, progress)
    if wants == MERGED:
        return _merged(src, journal, progress)
    if wants == MLX:
        return _mlx(src, journal, progress)
    return src


def _export(
    what: Any, to: str, journal: Journal, progress: bool, quant: str | None = None, **more: Any
) -> Any:
    """What a deploy exports first: the one export route (`tg.export`), verified and held to
    the job's task eval like any export, journaled as an artifact of its job."""
    from gateway.facade.export import export

    return export(what, to, quant=quant, journal=journal, progress=progress, **more)


def _gguf(src: DeploySource, journal: Journal, progress: bool) -> DeploySource:
    """The one model GGUF of a file, an export folder, an artifact or a job; a job without a
    GGUF export is exported first: the smallest quant that verifies (`_smallest_verified`)."""
    path, art_id, job = src.path, src.artifact_id, src.job
    if path is None and job is not None:
        rows = [a for a in journal.artifacts(job.id) if a["kind"] == "gguf"]
        if not rows:
            result, notes = _smallest_verified(job, journal, progress)
            gguf = result.files[0]
            return replace(
                src,
                path=gguf,
                artifact_id=result.artifact_id,
                sha256=_sha(result.artifact_id, gguf, journal),
                notes=src.notes + notes,
            )
        path, art_id = Path(rows[-1]["uri"]), rows[-1]["id"]
    assert path is not None
    if path.is_file() and path.suffix == ".gguf":
        files = [path]
    else:
        files = (
            sorted(p for p in path.glob("*.gguf") if "adapter" not in p.name)
            if path.is_dir()
            else []
        )
    if len(files) != 1:
        raise DeployError(
            f"{path} holds {len(files)} model GGUF files; deploy needs exactly one",
            fix="name the .gguf file itself, or export first: tunegate export ID --to gguf",
        )
    gguf = files[0].resolve()
    return replace(src, path=gguf, artifact_id=art_id, sha256=_sha(art_id, gguf, journal))


def _smallest_verified(job: Any, journal: Journal, progress: bool) -> tuple[Any, tuple[str, ...]]:
    """The job's configured GGUF quant (else AUTO_QUANT), and when it fails its verification
    the next larger (q4_k_m → q5_k_m → q6_k → q8_0 → f16): a small model that loses too much
    to 4 bits still deploys, at the smallest size that keeps it. Each failure is kept as a
    note (and an event on the job); the deploy fails only when no quant verifies."""
    from exporters.formats import gguf_ladder

    wanted = job.spec.get("export") or {}
    first = wanted.get("quant") if wanted.get("to", GGUF) == GGUF and wanted.get("quant") else None
    notes: list[str] = []
    for quant in gguf_ladder(first or AUTO_QUANT):
        try:
            result = _export(job.id, GGUF, journal, progress, quant)
        except VerificationError as exc:
            notes.append(f"{quant} failed verification: {'; '.join(exc.failures)}")
            journal.add_event(job.id, "export", notes[-1])
            continue
        if notes:
            notes.append(f"{quant} verified: deployed at {quant}")
            journal.add_event(job.id, "export", notes[-1])
        return result, tuple(notes)
    raise DeployError(
        f"no GGUF quant of {job.id} verifies: " + " | ".join(notes),
        fix="see each export's report (NAME.unverified/export.json); `tunegate export "
        f"{job.id} --to gguf --quant f16 --no-verify` keeps one at your own risk",
    )


def _sha(art_id: str | None, path: Path, journal: Journal) -> str | None:
    """The hash an export recorded for exactly this file, so it need not be read again."""
    row = journal.artifact(art_id) if art_id else None
    return row["sha256"] if row and Path(row["uri"]) == Path(path) else None


def _merged(src: DeploySource, journal: Journal, progress: bool) -> DeploySource:
    """A merged HF folder: the source itself, or the adapter merged (and verified) first."""
    path = src.path
    weights = path is not None and (path / "config.json").is_file()
    if weights and not (path / "adapter_config.json").exists():  # type: ignore[operator]
        return src
    what = path if path is not None else src.job.id  # type: ignore[union-attr]
    result = _export(what, "merged", journal, progress)
    return replace(src, path=Path(result.path), artifact_id=result.artifact_id)


def _mlx(src: DeploySource, journal: Journal, progress: bool) -> DeploySource:
    """An MLX folder: the source itself, a job's MLX export, or the adapter, merged folder or
    job exported to MLX first (AUTO_MLX, verified)."""
    path, job = src.path, src.job
    if path is not None and path.is_dir() and is_mlx(path):
        return src
    if path is None and job is not None:
        rows = [a for a in journal.artifacts(job.id) if a["kind"] == "mlx"]
        if rows:
            return replace(src, path=Path(rows[-1]["uri"]), artifact_id=rows[-1]["id"])
    what = path if path is not None else job.id  # type: ignore[union-attr]
    result = _export(what, "mlx", journal, progress, AUTO_MLX)
    return replace(src, path=Path(result.path), artifact_id=result.artifact_id)


def _record(journal: Journal, target: str, prep: Prepared, make: Any) -> Deployment:
    """Journal the deployment pending, run the target's remote step, then live or failed.
    A target with nothing to create is journaled live at once."""
    state = "pending" if prep.remote else "live"
    dep = journal.add_deployment(
        prep.artifact_id, target, prep.name, endpoint=prep.endpoint, state=state, meta=prep.meta
    )
    if prep.remote:
        try:
            made = dict(make(prep))
        except Exception:
            journal.update_deployment(dep, state="failed")
            raise
        endpoint = made.pop("endpoint", prep.endpoint)
        journal.update_deployment(dep, state="live", endpoint=endpoint, meta={**prep.meta, **made})
    for extra in prep.companions:  # e.g. the base of an engine group, served under its name
        journal.add_deployment(
            extra.artifact_id,
            target,
            extra.name,
            endpoint=extra.endpoint,
            state="live",
            meta=extra.meta,
        )
    return get_deployment(dep, journal)


def _same(journal: Journal, to: str, src: DeploySource, name: str | None) -> Deployment | None:
    """The deployment of this job to this target (by that name, when one is given) that a
    killed deploy left pending, or that is live: a target that can resume finishes or changes
    it rather than making a second one."""
    if src.job is None:
        return None
    for dep in deployments(journal, all=True):  # newest first
        ours = dep.target == to and (dep.meta or {}).get("job") == src.job.id
        if ours and dep.state in ("pending", "live") and name in (None, dep.name):
            return dep
    return None


def _resume(
    journal: Journal, dep: Deployment, deployer: Any, prepared: Prepared | None = None
) -> Deployment:
    """Run the remote step again: from what was journaled (the target finds what it made,
    its names chosen before the first remote call, and adopts it), or with a changed spec
    `prepared` for the same deployment (the target updates it in place)."""
    prepared = prepared or Prepared(dep.name, dict(dep.meta or {}), dep.endpoint, dep.artifact_id)
    before = dict(dep.meta or {})
    kept = {k: before[k] for k in ACCOUNTING if k in before}  # what it has cost so far stays
    prepared.meta = {**kept, **prepared.meta}
    if prepared.meta != before:  # the new spec is journaled before the remote step
        journal.update_deployment(dep.id, meta=prepared.meta)
    try:
        made = dict(deployer.deploy(prepared))
    except Exception:
        if dep.state == "live":  # the old version still answers: it stays as it was
            journal.update_deployment(dep.id, meta=before)
        else:
            journal.update_deployment(dep.id, state="failed")
        raise
    endpoint = made.pop("endpoint", None) or dep.endpoint
    journal.update_deployment(
        dep.id, state="live", endpoint=endpoint, meta={**prepared.meta, **made}
    )
    return get_deployment(dep.id, journal)


def live_status(dep: Deployment, journal: Journal | None = None) -> dict[str, Any] | None:
    """What the target says of a live deployment now (a rented fleet's replicas and their
    states), for targets that can tell; None for the others. Each answer also accrues the
    running cost: the replicas seen alive last time x their $/h x the hours since."""
    import time

    deployer = get_deployer(dep.target)
    if not hasattr(deployer, "live_status") or dep.state != "live":
        return None
    journal = journal or Journal()
    now_status = deployer.live_status(dep)
    meta, now = dict(dep.meta or {}), time.time()
    before = deployer.price(dep, None, _catalog()).usd_per_hour  # at the count seen last
    since = float(meta.get("status_at") or dep.created_at)
    meta["accrued_usd"] = float(meta.get("accrued_usd") or 0.0) + before * (now - since) / 3600
    meta["replicas_alive"], meta["status_at"] = int(now_status.get("alive") or 0), now
    meta["replica_states"] = [  # for the dashboard, which does not ask the target itself
        {k: r.get(k) for k in ("replica_id", "status", "reason") if r.get(k) is not None}
        for r in now_status.get("replicas") or []
    ]
    journal.update_deployment(dep.id, meta=meta)
    return {**now_status, "accrued_usd": meta["accrued_usd"]}


def _catalog() -> Any:
    from gateway.catalog import load_catalog

    return load_catalog()


def undeploy(ref: str, journal: Journal | None = None) -> Deployment:
    """Remove a deployment where it runs (e.g. delete the Ollama model) and mark it removed."""
    journal = journal or Journal()
    dep = get_deployment(ref, journal)
    if dep.state == "removed":
        return dep
    get_deployer(dep.target).undeploy(dep)
    journal.update_deployment(dep.id, state="removed")
    return get_deployment(dep.id, journal)


def chat(
    deployment: str | Deployment,
    messages: list[dict[str, str]] | str,
    *,
    max_tokens: int = 256,
    journal: Journal | None = None,
) -> ChatReply:
    """One greedy request to a deployment through the client its target speaks."""
    dep = deployment if isinstance(deployment, Deployment) else get_deployment(deployment, journal)
    if isinstance(messages, str):
        messages = [{"role": "user", "content": messages}]
    if dep.state != "live":
        raise JobError(f"deployment {dep.id} is {dep.state}", fix="tunegate deployments")
    return get_deployer(dep.target).chat(dep, list(messages), max_tokens)
