"""tunegate's side of SkyPilot, run by SkyPilot's own interpreter.

SkyPilot pins `click<8.2` (0.14.1) while today's huggingface-hub needs `click>=8.4.2`, so the
two rarely share an environment: installing both forces transformers several releases back.
tunegate therefore runs this file with the Python that SkyPilot is installed in:

    SKY_PYTHON sky_bridge.py COMMAND  < request.json  > answer.json

It imports only `sky` and the standard library. Commands:

| command | request | answer |
|---|---|---|
| `task` | the task (see `_task`) | its YAML config, and the config read back by `Task.from_yaml_config` |
| `optimize` | a task and `clouds` | the optimizer's pick among those clouds (in-process, from the local catalogs) |
| `prices` | `accelerators`, `clouds`, `spot` | each offer's cloud, region, instance, $/h (from `sky.catalog`) |
| `enabled` | `check` (default true) | the clouds `sky check` enables |
| `features` | `clouds` | whether each can mount a bucket and run several nodes |
| `launch` | a task and `name` | the managed job's ids |
| `queue` | `name` (a prefix) | the managed jobs of that name: id, status, failure reason, recoveries, cost |
| `cancel` | `job_id` | - |
| `logs` | `job_id`, `tail` | the job's last log lines |
| `serve_task` | a task with `service` | its YAML config (probe headers redacted), and read back |
| `serve_up` | a task with `service`, `name` | the service's name and endpoint |
| `serve_status` | `name`, `reasons` | the service: status, endpoint, version, `spec_sha`, replicas and their states (with `reasons`, why the failed ones failed) |
| `serve_update` | a task with `service`, `name` | the new version |
| `serve_down` | `name` | - |

A service's engine key arrives in `secrets.TG_ENGINE_KEY` and becomes the readiness probe's
`Authorization` header; no answer carries it back.
"""

from __future__ import annotations

import io
import json
import sys
from typing import Any


def _task(req: dict[str, Any]) -> Any:
    """A `sky.Task` from tunegate's request: the worker as `run`, its install as `setup`, every
    acceptable accelerator (x each allowed cloud) as `any_of`, JOBDIR on a bucket mount."""
    import sky

    task = sky.Task(
        name=req["name"],
        setup=req.get("setup"),
        run=req["run"],
        envs=req.get("envs") or {},
        secrets=req.get("secrets") or None,  # storage credentials: SkyPilot redacts them
        workdir=req.get("workdir"),
        num_nodes=int(req.get("num_nodes") or 1),
    )
    common: dict[str, Any] = {"use_spot": bool(req.get("spot"))}
    if req.get("max_hourly_cost"):
        common["max_hourly_cost"] = float(req["max_hourly_cost"])
    if req.get("disk_size"):
        common["disk_size"] = int(req["disk_size"])
    if req.get("job_recovery"):
        common["job_recovery"] = req["job_recovery"]
    if req.get("ports"):
        common["ports"] = int(req["ports"])
    infras = req.get("infra") or [None]
    resources = [
        sky.Resources(accelerators={acc["name"]: int(acc["count"])}, infra=infra, **common)
        for acc in req["accelerators"]
        for infra in infras
    ]
    task.set_resources(set(resources) if len(resources) > 1 else resources[0])
    mounts = req.get("file_mounts") or {}
    plain = {dst: src for dst, src in mounts.items() if isinstance(src, str)}
    buckets = {
        dst: sky.Storage.from_yaml_config(spec)
        for dst, spec in mounts.items()
        if isinstance(spec, dict)
    }
    if plain:
        task.set_file_mounts(plain)
    if buckets:  # a bucket folder mounted on the machine (JOBDIR)
        task.set_storage_mounts(buckets)
    return task


def _config(task: Any) -> dict[str, Any]:
    """The task as SkyPilot writes it, its secrets' values redacted (what it shows and logs)."""
    return task._to_yaml_config(redact_secrets=True)


def _public(config: Any) -> Any:
    """A task config without SkyPilot's private bookkeeping keys (`_user_specified_yaml`...)."""
    if isinstance(config, dict):
        return {k: _public(v) for k, v in config.items() if not str(k).startswith("_")}
    if isinstance(config, list):
        return [_public(v) for v in config]
    return config


def cmd_task(req: dict[str, Any]) -> dict[str, Any]:
    import copy

    import sky

    config = _config(_task(req))
    # from_yaml_config consumes the dict it is given: read back a copy
    again = sky.Task.from_yaml_config(copy.deepcopy(config)).to_yaml_config()
    return {"config": _public(config), "round_trip": _public(again)}


def cmd_optimize(req: dict[str, Any]) -> dict[str, Any]:
    """The optimizer in-process over the given clouds, as SkyPilot's own tests run it (the
    SDK's `sky.optimize` returns None in 0.14.1: its server drops the plan)."""
    import sky
    from sky import check, optimizer
    from sky.utils import registry

    clouds = [registry.CLOUD_REGISTRY.from_str(c) for c in req["clouds"]]
    check.get_cached_enabled_clouds_or_refresh = lambda *a, **k: clouds  # type: ignore[assignment]
    task = _task(req)
    with sky.Dag() as dag:
        dag.add(task)
    out = io.StringIO()
    saved, sys.stdout = sys.stdout, out  # the optimizer prints its table
    try:
        optimizer.Optimizer.optimize(dag, quiet=True)
    finally:
        sys.stdout = saved
    best = task.best_resources
    return {
        "cloud": str(best.cloud),
        "region": best.region,
        "instance_type": best.instance_type,
        "accelerators": best.accelerators,
        "spot": best.use_spot,
        "usd_per_hour": best.get_cost(3600),
    }


def cmd_prices(req: dict[str, Any]) -> dict[str, Any]:
    from sky import catalog

    rows = []
    for name in req["accelerators"]:
        found = catalog.list_accelerators(
            gpus_only=True,
            name_filter=f"^{name}$",
            quantity_filter=req.get("count"),
            clouds=req.get("clouds"),
            case_sensitive=False,
            all_regions=True,
            require_price=True,
        )
        for acc, infos in found.items():
            for info in infos:
                rows.append(
                    {
                        "accelerator": acc,
                        "count": info.accelerator_count,
                        "cloud": str(info.cloud),
                        "instance_type": info.instance_type,
                        "region": info.region,
                        "usd_per_hour": _price(info.price),
                        # a spot price of 0 means none is offered (Vast lists 0.00)
                        "spot_usd_per_hour": _price(info.spot_price),
                    }
                )
    return {"offers": rows}


def _price(value: Any) -> float | None:
    """A catalog price, or None for a missing one (NaN in the CSV) or a 0 (none offered)."""
    try:
        price = float(value)
    except (TypeError, ValueError):
        return None
    return price if price == price and price > 0 else None


def cmd_enabled(req: dict[str, Any]) -> dict[str, Any]:
    import sky
    from sky.client import sdk

    if req.get("check", True):  # `sky check`: credentials as they are now, not as cached
        sky.get(sdk.check(None, False))
    return {"clouds": [str(c).lower() for c in sky.get(sdk.enabled_clouds())]}


def cmd_features(req: dict[str, Any]) -> dict[str, Any]:
    """What each named cloud cannot do that a rented tunegate job needs: mount a bucket (its
    folder), run on several nodes. Read from SkyPilot's own table of unsupported features."""
    from sky.clouds import CloudImplementationFeatures as F
    from sky.utils import registry

    out = {}
    for name in req["clouds"]:
        cloud = registry.CLOUD_REGISTRY.from_str(name)
        missing = getattr(cloud, "_CLOUD_UNSUPPORTED_FEATURES", {}) or {}
        out[name] = {
            "mounts_buckets": F.STORAGE_MOUNTING not in missing,
            "multi_node": F.MULTI_NODE not in missing,
            "why": str(missing.get(F.STORAGE_MOUNTING) or missing.get(F.MULTI_NODE) or ""),
        }
    return {"clouds": out}


def cmd_launch(req: dict[str, Any]) -> dict[str, Any]:
    import sky

    job_ids, _ = sky.get(sky.jobs.launch(_task(req), name=req["name"]))
    return {"job_ids": list(job_ids or [])}


def cmd_queue(req: dict[str, Any]) -> dict[str, Any]:
    import sky

    fields = [
        "job_id", "job_name", "task_name", "status", "failure_reason", "recovery_count",
        "submitted_at", "end_at", "resources",
    ]  # fmt: skip
    records, *_ = sky.get(
        sky.jobs.queue_v2(refresh=False, name_match=req.get("name"), fields=fields)
    )
    out = []
    for r in records:
        get = r.get if isinstance(r, dict) else (lambda k, _r=r: getattr(_r, k, None))
        status = get("status")
        out.append(
            {
                "job_id": get("job_id"),
                "name": get("job_name") or get("task_name"),
                "status": getattr(status, "value", status),
                "failure_reason": get("failure_reason"),
                "recovery_count": get("recovery_count"),
                "submitted_at": get("submitted_at"),
                "end_at": get("end_at"),
                "resources": str(get("resources") or ""),
                "cost": get("cost") if get("cost") is not None else get("total_cost"),
            }
        )
    return {"jobs": [j for j in out if not req.get("name") or j["name"] == req["name"]]}


def cmd_cancel(req: dict[str, Any]) -> dict[str, Any]:
    import sky

    sky.get(sky.jobs.cancel(job_ids=[int(req["job_id"])]))
    return {}


def cmd_logs(req: dict[str, Any]) -> dict[str, Any]:
    import sky

    out = io.StringIO()
    sky.jobs.tail_logs(
        job_id=int(req["job_id"]), follow=False, tail=int(req.get("tail") or 200), output_stream=out
    )
    return {"text": out.getvalue()}


# SkyServe ---------------------------------------------------------------------------------
KEY_VAR = "TG_ENGINE_KEY"


def _service_task(req: dict[str, Any]) -> Any:
    """`_task` plus its `service:` section. The replica port is set on the resources *and*
    the service: `sky.serve.up` does not copy one to the other as the CLI does, and without
    the service's port every replica launch fails silently (serving-scale.md, trap 1)."""
    from sky.serve import SkyServiceSpec

    port = int(req["port"])
    task = _task({**req, "ports": port})
    service = dict(req["service"])
    probe = dict(service.get("readiness_probe") or {})
    key = (req.get("secrets") or {}).get(KEY_VAR)
    if key:
        probe["headers"] = {**(probe.get("headers") or {}), "Authorization": f"Bearer {key}"}
    service["readiness_probe"] = probe
    service["ports"] = port
    task.set_service(SkyServiceSpec.from_yaml_config(service))
    return task


def _hide_key(config: Any) -> Any:
    probe = ((config or {}).get("service") or {}).get("readiness_probe")
    if isinstance(probe, dict) and probe.get("headers"):
        probe["headers"] = {k: "<redacted>" for k in probe["headers"]}
    return config


def cmd_serve_task(req: dict[str, Any]) -> dict[str, Any]:
    import copy

    import sky

    config = _config(_service_task(req))
    again = sky.Task.from_yaml_config(copy.deepcopy(config)).to_yaml_config()
    return {"config": _hide_key(_public(config)), "round_trip": _hide_key(_public(again))}


def cmd_serve_up(req: dict[str, Any]) -> dict[str, Any]:
    import sky

    name, endpoint = sky.get(sky.serve.up(_service_task(req), service_name=req["name"]))
    return {"name": name, "endpoint": endpoint}


def _spec_sha(yaml_content: Any) -> str | None:
    import re

    found = re.search(r"TG_SPEC_SHA['\"]?:\s*['\"]?([0-9a-f]{8,64})", str(yaml_content or ""))
    return found.group(1) if found else None


# what each failed state means (sky/serve/serve_state.py), the reason when the log has none
FAILED = {
    "FAILED": "its setup or run command failed",
    "FAILED_INITIAL_DELAY": "it did not pass the readiness probe within the initial delay",
    "FAILED_PROBING": "it stopped answering the readiness probe",
    "FAILED_PROVISION": "no machine could be provisioned for it",
    "FAILED_CLEANUP": "tearing it down failed (a machine may be left running)",
    "PREEMPTED": "the cloud took its machine back (spot preemption)",
    "UNKNOWN": "SkyServe lost track of it",
}
REASON_WORDS = ("error", "exception", "failed", "unavailable", "quota", "denied", "not found")
REASONS_AT_MOST = 3  # replica logs read per status (each is a request to the API server)


def _failure_reason(service: str, replica_id: int, status: str) -> str:
    """Why a replica failed: from the tail of its log (`reason_from_log`), else what its
    state means."""
    import contextlib
    import io

    import sky

    buf = io.StringIO()
    with contextlib.suppress(Exception):  # no log to read: the state's meaning stands
        sky.serve.tail_logs(service, target="replica", replica_id=replica_id, follow=False,
                            output_stream=buf, tail=200)  # fmt: skip
    return reason_from_log(buf.getvalue()) or FAILED[status]


def reason_from_log(text: str) -> str:
    """The line of a replica's log that says what went wrong: the last exception's own line
    (`RuntimeError: ...`), else the last line naming an error; ANSI colours stripped."""
    import re

    lines = [re.sub(r"\x1b\[[0-9;]*m", "", line).strip() for line in text.splitlines()]
    raised = [x for x in lines if re.match(r"^[A-Za-z_][\w.]*(Error|Exception): \S", x)]
    told = raised or [x for x in lines if any(w in x.lower() for w in REASON_WORDS)]
    return told[-1][:300] if told else ""


def cmd_serve_status(req: dict[str, Any]) -> dict[str, Any]:
    import sky

    records = sky.get(sky.serve.status([req["name"]]))
    out = []
    for r in records:
        status = r.get("status")
        replicas = [
            {
                "replica_id": i.get("replica_id"),
                "status": getattr(i.get("status"), "value", str(i.get("status"))),
                "endpoint": i.get("endpoint"),
                "version": i.get("version"),
                "is_spot": i.get("is_spot"),
                "launched_at": i.get("launched_at"),
            }
            for i in r.get("replica_info") or []
        ]
        failed = [x for x in replicas if x["status"] in FAILED][-REASONS_AT_MOST:]
        for x in failed if req.get("reasons") else []:
            x["reason"] = _failure_reason(str(r.get("name")), int(x["replica_id"]), x["status"])
        out.append({
            "name": r.get("name"),
            "status": getattr(status, "value", str(status)),
            "endpoint": r.get("endpoint"),
            "version": max(r.get("active_versions") or [0], default=0),
            "policy": r.get("policy"),
            "spec_sha": _spec_sha(r.get("yaml_content")),
            "replicas": replicas,
        })  # fmt: skip
    return {"services": out}


def cmd_serve_update(req: dict[str, Any]) -> dict[str, Any]:
    import sky
    from sky.serve import serve_utils

    mode = serve_utils.UpdateMode(req.get("mode") or "rolling")
    sky.get(sky.serve.update(_service_task(req), service_name=req["name"], mode=mode))
    return {}


def cmd_serve_down(req: dict[str, Any]) -> dict[str, Any]:
    import sky

    sky.get(sky.serve.down(service_names=[req["name"]]))
    return {}


COMMANDS = {name[4:]: fn for name, fn in dict(globals()).items() if name.startswith("cmd_")}


def main() -> None:
    if len(sys.argv) != 2 or sys.argv[1] not in COMMANDS:
        sys.exit(f"usage: {sys.argv[0]} {'|'.join(sorted(COMMANDS))} < request.json")
    request = json.loads(sys.stdin.read() or "{}")
    real_stdout = sys.stdout
    sys.stdout = sys.stderr  # SkyPilot's own output goes to stderr; stdout carries the answer
    try:
        answer = COMMANDS[sys.argv[1]](request)
    except Exception as exc:  # the caller turns this into a tunegate error with the reason
        answer = {"error": f"{type(exc).__name__}: {exc}"}
    sys.stdout = real_stdout
    json.dump(answer, sys.stdout, default=str)


if __name__ == "__main__":
    main()
