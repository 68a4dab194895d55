"""Rented GPUs through SkyPilot: a local backend's job run as a SkyPilot managed job.

The worker is unchanged (`python -m providers.<backend>.worker JOBDIR --resume`, under torchrun
when the offer has several GPUs). JOBDIR is the job's folder in the configured bucket, mounted
on the machine, so checkpoints, metrics and the adapter survive a preemption: SkyPilot's
controller starts the job again elsewhere and the worker carries on from its newest complete
checkpoint. On a cloud that cannot mount a bucket (RunPod, Vast) JOBDIR is a plain folder on
the machine and `providers.runners.bucket_sync` runs the worker, pulling the inputs and the
newest complete checkpoint from the same bucket folder and pushing progress back (the storage
credentials travel as SkyPilot task secrets: never journaled, logged or printed). The managed job's name carries the idempotency key, so a launch whose answer was
lost is found by name and adopted, never made twice (`find`).

SkyPilot runs in its own interpreter through `providers.runners.sky_bridge` (it pins an older click
than today's huggingface-hub accepts; docs/scale-out.md).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from gateway.errors import JobError, ProviderError
from gateway.journal import JobRecord
from gateway.journal.records import JobUpdate, RemoteEvent, job_dir
from providers.jobdir import JobDir, add_metrics
from providers.runners.bucket import MOUNT, JobBucket, storage_secrets

BRIDGE = Path(__file__).with_name("sky_bridge.py")
ROOT = Path(__file__).resolve().parents[2]
# SkyPilot's managed-job states (sky/jobs/state.py) -> tunegate's; CANCELLING still bills
STATES = {
    "PENDING": "queued",
    "SUBMITTED": "queued",
    "STARTING": "queued",
    "RUNNING": "running",
    "RECOVERING": "running",
    "WINDING_DOWN": "running",
    "CANCELLING": "running",
    "SUCCEEDED": "succeeded",
    "CANCELLED": "cancelled",
}
INSTALL = "pip install --upgrade pip && pip install -e '.[{extras}]'"


class SkyUnanswered(ProviderError):
    """SkyPilot did not answer (a timeout, its API server unreachable): the request may or may
    not have reached it, so a create is searched for by name before any retry."""

    status_code = 503  # what gateway.util.retry treats as "try again, after searching"


_UNANSWERED = ("ConnectionError", "Timeout", "ApiServerConnectionError", "RequestException")


def sky_python() -> str | None:
    """The interpreter SkyPilot is installed in: the config's, `sky`'s own, this one, or the
    checkout's .venv-sky."""
    import importlib.util

    from gateway.catalog.config import load_config

    configured = load_config().skypilot.python
    if configured:
        return configured
    sky = shutil.which("sky")
    if sky:
        try:
            first = Path(sky).read_text(errors="replace").splitlines()[0]
        except (OSError, IndexError):
            first = ""
        if first.startswith("#!") and "python" in first:
            return first[2:].strip().split()[0]
    if importlib.util.find_spec("sky"):
        return sys.executable
    built = ROOT / ".venv-sky" / "bin" / "python"  # what `make .venv-sky/.installed` builds
    return str(built) if built.exists() else None


def not_ready() -> str | None:
    """Why a rented offer cannot be launched from here (None: it can), without running
    SkyPilot: its interpreter is found and a bucket is configured."""
    from gateway.catalog.config import load_config

    if sky_python() is None:
        return "SkyPilot is not installed (tunegate doctor says how)"
    if not load_config().skypilot.bucket:
        return "no bucket for rented jobs (skypilot.bucket in tunegate's config)"
    return None


def bridge(command: str, request: dict[str, Any], timeout: float = 900) -> dict[str, Any]:
    """One SkyPilot call through the bridge; its error, if any, as a ProviderError."""
    from gateway.util.retry import redact

    python = sky_python()
    if python is None:
        raise ProviderError(
            "SkyPilot is not installed",
            fix="install it in its own environment (it pins click<8.2): `pipx install "
            "'skypilot[aws]'` or `uv tool install skypilot`; or set skypilot.python in "
            "tunegate's config",
        )
    env = {**os.environ, "SKYPILOT_DISABLE_USAGE_COLLECTION": "1"}
    try:
        done = subprocess.run(
            [python, str(BRIDGE), command],
            input=json.dumps(request),
            capture_output=True,
            text=True,
            timeout=timeout,
            env=env,
        )
    except subprocess.TimeoutExpired:
        raise SkyUnanswered(f"SkyPilot did not answer `{command}` in {timeout:.0f} s") from None
    except OSError as exc:
        raise ProviderError(f"cannot run SkyPilot's interpreter {python}: {exc}") from None
    try:
        answer = json.loads(done.stdout)
    except ValueError:
        tail = redact(done.stderr[-800:])
        raise ProviderError(
            f"SkyPilot `{command}` failed (exit {done.returncode}): {tail}"
        ) from None
    if "error" in answer:
        error = redact(str(answer["error"]))[:800]
        unanswered = any(error.startswith(name) for name in _UNANSWERED)
        raise (SkyUnanswered if unanswered else ProviderError)(f"SkyPilot `{command}`: {error}")
    return dict(answer)


def job_name(rec: JobRecord, attempt: int = 0) -> str:
    """The managed job's name: the job id and part of its idempotency key (and the resume)."""
    name = f"{rec.id}-{rec.idempotency_key.removeprefix('tgk-')[:10]}"
    return f"{name}-r{attempt}" if attempt else name


def _attempt(rec: JobRecord) -> int:
    return int((rec.remote or {}).get("sky_attempt") or 0)


def _configured_bucket() -> str:
    from gateway.catalog.config import load_config

    uri = load_config().skypilot.bucket
    if not uri:
        raise JobError(
            "rented jobs keep their folder in a bucket, and none is configured",
            fix="set skypilot.bucket (s3://bucket/prefix) in $TUNEGATE_HOME/config.yaml, or "
            "TUNEGATE_SKYPILOT_BUCKET",
        )
    return uri


def check_ready() -> None:
    """A rented launch needs SkyPilot and a bucket: said before anything is written."""
    if sky_python() is None:
        bridge("enabled", {})  # raises with the install command
    _configured_bucket()


def bucket_of(rec: JobRecord) -> JobBucket:
    """The job's folder: in the bucket it was launched with (the config may change since)."""
    return JobBucket((rec.remote or {}).get("bucket") or _configured_bucket(), rec.id)


def accelerators(rec: JobRecord) -> list[dict[str, Any]]:
    """The offer's GPU first, then every other rentable one with the memory the job needs,
    cheapest first: SkyPilot takes whichever it can get (`any_of`)."""
    from gateway.catalog import load_catalog

    catalog = load_catalog()
    offer = rec.offer or {}
    need = float((offer.get("vram_gb") or {}).get("likely") or 0)
    count = int((rec.spec.get("resources") or {}).get("gpus") or offer.get("gpus") or 1)
    chosen = catalog.hardware.get(str(offer.get("hardware")))
    others = sorted(
        (
            hw
            for hw in catalog.hardware.values()
            if hw.skypilot and hw.vendor == "nvidia" and hw.usable_gb >= need and hw is not chosen
        ),
        key=lambda hw: hw.cheapest_rent().usd_per_hour if hw.cheapest_rent() else 1e9,
    )
    first = [chosen] if chosen is not None and chosen.skypilot else []
    return [{"name": hw.skypilot, "count": count} for hw in first + others]


def uses_axolotl(spec: dict[str, Any]) -> bool:
    """Several nodes (or asked for): Axolotl runs the job instead of tunegate's worker."""
    res = spec.get("resources") or {}
    return res.get("launcher") == "axolotl" or int(res.get("nodes") or 1) > 1


def remote_jobdir(rec: JobRecord) -> str:
    """JOBDIR on the rented machine: the job's folder inside the mounted bucket."""
    return f"{MOUNT}/{bucket_of(rec).prefix}"


SYNCED_JOBDIR = "~/tunegate-job"  # JOBDIR on a machine that cannot mount the bucket


def task_request(
    rec: JobRecord, worker: str, extras: str, attempt: int = 0, sync: bool = False
) -> dict[str, Any]:
    """What the bridge builds the `sky.Task` from. `sync`: the job's cloud cannot mount the
    bucket, so `bucket_sync` keeps its folder there (the request then carries `secrets`: pass
    it to the bridge only, never to the journal or a log)."""
    from gateway.catalog.config import load_config

    settings = load_config().skypilot
    spec = rec.spec or {}
    res = spec.get("resources") or {}
    accs = accelerators(rec)
    gpus = accs[0]["count"] if accs else 1
    bucket = bucket_of(rec)
    jobdir = SYNCED_JOBDIR if sync else remote_jobdir(rec)
    if sync and uses_axolotl(spec):
        raise ProviderError(
            f"{res.get('cloud')} cannot mount a bucket and runs one node: the several-node "
            "(Axolotl) route needs a cloud that mounts one",
            fix="--on aws, gcp, lambda, ...",
        )
    run = f"python -m {worker} {jobdir} --resume"
    if gpus > 1:
        run = (
            "python -m torch.distributed.run --nproc_per_node=$SKYPILOT_NUM_GPUS_PER_NODE "
            f"--nnodes=1 -m {worker} {jobdir} --resume"
        )
    if sync:
        run = f"python -m providers.runners.bucket_sync {bucket.uri} {jobdir} -- {run}"
    setup = INSTALL.format(extras=extras)
    if uses_axolotl(spec):
        from providers.runners.axolotl import launch_command

        run = launch_command(f"{jobdir}/axolotl.yml")
        setup += " && pip install axolotl"
    request: dict[str, Any] = {
        "name": job_name(rec, attempt),
        "workdir": str(ROOT),
        "setup": setup,
        "run": run,
        "num_nodes": int(res.get("nodes") or 1),
        "envs": {
            "TOKENIZERS_PARALLELISM": "false",
            "PYTHONUNBUFFERED": "1",
            "TUNEGATE_JOBDIR": jobdir,
        },
        "accelerators": accs,
        "spot": bool(res.get("spot") or settings.spot),
        "infra": [res["cloud"]] if res.get("cloud") else (settings.clouds or None),
        "file_mounts": {}
        if sync
        else {MOUNT: {"source": f"s3://{bucket.bucket}", "mode": "MOUNT_CACHED"}},
        # preemptions are recovered by default; a failure the worker survives is retried twice
        "job_recovery": {"strategy": "FAILOVER", "max_restarts_on_errors": 2},
    }
    if sync:
        request["secrets"] = storage_secrets()  # the bucket's, for bucket_sync there
    max_usd = (spec.get("constraints") or {}).get("max_usd")
    hours = ((rec.offer or {}).get("train_hours") or {}).get("likely")
    if max_usd and hours:
        request["max_hourly_cost"] = round(float(max_usd) / float(hours), 4)
    return request


def upload(rec: JobRecord, jobdir: Path) -> dict[str, str]:
    """The job's folder as the worker will find it: spec.json and the converted data (and
    the Axolotl config, checked here first, on the Axolotl route)."""
    bucket = bucket_of(rec)
    if uses_axolotl(rec.spec or {}):
        from providers.runners.axolotl import write

        write(rec.spec or {}, remote_jobdir(rec), jobdir / "axolotl.yml")
    sent = {}
    for path in sorted(jobdir.iterdir()):
        if path.is_file() and path.suffix in (".json", ".jsonl", ".yml"):
            bucket.put(path.name, path)
            sent[path.name] = f"{bucket.uri}/{path.name}"
    return sent


def launch(rec: JobRecord, worker: str, extras: str, attempt: int = 0, sync: bool = False) -> str:
    answer = bridge("launch", task_request(rec, worker, extras, attempt, sync))
    ids = answer.get("job_ids") or []
    if not ids:
        raise ProviderError("SkyPilot accepted the launch but returned no job id")
    return f"sky:{ids[0]}"


def find(rec: JobRecord) -> str | None:
    """The managed job of this name, if a launch got that far: adopt it."""
    jobs = bridge("queue", {"name": job_name(rec, _attempt(rec))}).get("jobs") or []
    return f"sky:{max(int(j['job_id']) for j in jobs)}" if jobs else None


def _job_id(rec: JobRecord) -> int:
    remote = str(rec.remote_id or "")
    if not remote.startswith("sky:"):
        raise JobError(f"job {rec.id} has no SkyPilot job id ({remote or 'not launched'})")
    return int(remote.split(":", 1)[1])


def poll(rec: JobRecord) -> JobUpdate:
    """SkyPilot's state for the job, with the worker's status and metrics from the bucket."""
    name = job_name(rec, _attempt(rec))
    jobs = bridge("queue", {"name": name}).get("jobs") or []
    mine = [j for j in jobs if f"sky:{j['job_id']}" == rec.remote_id] or jobs
    if not mine:
        return JobUpdate("unknown", rec.state, warnings=[f"SkyPilot lists no job named {name}"])
    j = max(mine, key=lambda x: int(x["job_id"]))
    raw = str(j["status"])
    state = STATES.get(raw) or ("failed" if raw.startswith("FAILED") else "running")
    job = JobDir(job_dir(rec.id))
    bucket = bucket_of(rec)
    for small in ("status.json", "metrics.jsonl"):
        data = bucket.read(small)
        if data is not None:
            (job.path / small).write_bytes(data)
    update = JobUpdate(raw, state)
    add_metrics(update, job)
    recoveries = int(j.get("recovery_count") or 0)
    if raw == "RECOVERING" or recoveries:
        update.events.append(
            RemoteEvent(
                f"recovering:{recoveries}",
                f"preempted, recovering (recovery {max(recoveries, 1)}): the worker resumes "
                "from its newest complete checkpoint",
                level="warning",
            )
        )
    update.remote = {
        "runner": "skypilot",
        "sky_job_id": j["job_id"],
        "sky_name": name,
        "bucket": bucket.root,  # the configured bucket, kept with the job (config may change)
        "bucket_jobdir": bucket.uri,
        "jobdir": str(job.path),
        "raw_state": raw,
        "recoveries": recoveries,
    }
    if state == "failed":
        update.error = f"SkyPilot {raw}: {j.get('failure_reason') or 'no reason given'}"
    if state in ("succeeded", "failed", "cancelled"):
        update.actual = _actual(rec, j, job.status())
    return update


def _actual(rec: JobRecord, j: dict[str, Any], status: dict[str, Any]) -> dict[str, Any]:
    """SkyPilot's cost when it reports one, else the hours it ran times the offer's price."""
    out = {
        k: status[k]
        for k in ("tokens_per_s", "peak_memory_gb", "train_seconds", "trained_tokens", "steps")
        if status.get(k) is not None
    }
    if j.get("cost") is not None:
        out.update(usd=round(float(j["cost"]), 4), source="SkyPilot's reported cost")
        return out
    start, end = j.get("submitted_at"), j.get("end_at")
    offer = rec.offer or {}
    hourly = None
    if offer.get("train_usd") and offer.get("train_hours"):
        hours = float(offer["train_hours"].get("likely") or 0)
        hourly = float(offer["train_usd"].get("likely") or 0) / hours if hours else None
    if start is not None and end is not None and hourly is not None:
        ran = max(0.0, float(end) - float(start)) / 3600
        out.update(
            usd=round(ran * hourly, 4),
            hours=round(ran, 3),
            source=f"{ran:.2f} h x ${hourly:.2f}/h (the offer's price)",
        )
    return out


def cancel(rec: JobRecord) -> None:
    bridge("cancel", {"job_id": _job_id(rec)})


def logs(rec: JobRecord, tail: int = 200) -> str:
    return str(bridge("logs", {"job_id": _job_id(rec), "tail": tail}).get("text") or "")


def fetch_adapter(rec: JobRecord) -> Path:
    """The adapter the worker wrote to the bucket, copied into the local job folder."""
    job = JobDir(job_dir(rec.id))
    if not bucket_of(rec).download("adapter", job.adapter):
        raise JobError(f"job {rec.id} left no adapter in {bucket_of(rec).uri}/adapter")
    return job.adapter
