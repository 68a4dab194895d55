"""Serving on rented GPUs through SkyServe: the service request, and up / adopt / update /
down through the bridge (`sky_bridge.py`, SkyPilot's own interpreter).

Found again after a crash, never made twice (../shared/reference/serving-scale.md §1): the
service's name carries the deployment's key; before any `up` the bridge asks `status` for
that name. No service: `up`. One whose `TG_SPEC_SHA` is this spec's: adopt it. One with
another: `update` (rolling), never a second `up` of a live name, which fails late and vaguely.

The engine key guards each replica's public port. tunegate makes it, keeps it in a 0600 file
under `$TUNEGATE_HOME/serve/keys`, and hands it to SkyPilot as a task secret (the readiness
probe's header); it is never journaled, printed or put in a request id.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import time
from pathlib import Path
from typing import Any

from gateway.catalog import tunegate_home
from gateway.errors import DeployError
from providers.runners.sky_jobs import bridge

PORT = 8080
VLLM = "vllm>=0.8"
ADAPTER_DIR = "/tunegate/adapter"
PROBE_DELAY_S = 1200  # SkyServe's default: the image, the weights and the engine's warm-up
DOWN_WAIT_S = 600.0
# the spec fields a running service must match to be adopted as it is
SPEC_KEYS = ("engine", "base", "adapter_uri", "lora_name", "accelerator", "gpus", "cloud",
             "min_replicas", "max_replicas", "target_qps", "spot", "ondemand_base")  # fmt: skip


def service_name(name: str, key: str) -> str:
    """`tg-<name>-<key>`: SkyServe's rule (lower case, starts with a letter, <= 63 chars)."""
    slug = re.sub(r"[^a-z0-9-]+", "-", name.lower()).strip("-")[:40] or "model"
    return f"tg-{slug}-{key[:10]}"


def spec_sha(meta: dict[str, Any]) -> str:
    spec = {k: meta.get(k) for k in SPEC_KEYS}
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16]


def key_path(service: str) -> Path:
    return tunegate_home() / "serve" / "keys" / f"{service}.key"


def engine_key(service: str, *, create: bool = False) -> str:
    """The service's engine key (made once, kept in a file only this user reads)."""
    path = key_path(service)
    if path.is_file():
        return path.read_text().strip()
    if not create:
        raise DeployError(
            f"the engine key of {service} is not on this machine ({path})",
            fix="deploy from the machine (or TUNEGATE_HOME) that made it",
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    key = "tge-" + secrets.token_urlsafe(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(key)
    return key


def run_command(meta: dict[str, Any]) -> str:
    """vLLM's OpenAI server with the adapter, on the replica's port, behind the engine key."""
    module = json.dumps(
        {"name": meta["lora_name"], "path": ADAPTER_DIR, "base_model_name": meta["base"]}
    )
    return (
        f"vllm serve {meta['base']} --host 0.0.0.0 --port {PORT} --api-key $TG_ENGINE_KEY"
        f" --tensor-parallel-size {int(meta.get('gpus') or 1)} --enable-lora"
        f" --max-lora-rank {int(meta.get('lora_rank') or 16)} --lora-modules '{module}'"
    )


def request(meta: dict[str, Any], key: str | None) -> dict[str, Any]:
    """What the bridge builds the service from (with `key`, only ever passed to the bridge)."""
    policy: dict[str, Any] = {
        "min_replicas": int(meta["min_replicas"]),
        "max_replicas": int(meta["max_replicas"]),
        "target_qps_per_replica": float(meta["target_qps"]),
    }
    if meta.get("spot") and meta.get("ondemand_base"):
        policy["base_ondemand_fallback_replicas"] = int(meta["ondemand_base"])
    req: dict[str, Any] = {
        "name": meta["service"],
        "setup": f"pip install '{VLLM}'",
        "run": run_command(meta),
        "envs": {"TG_SPEC_SHA": meta["spec_sha"], "VLLM_NO_USAGE_STATS": "1"},
        "accelerators": [{"name": meta["accelerator"], "count": int(meta.get("gpus") or 1)}],
        "spot": bool(meta.get("spot")),
        "infra": [meta["cloud"]] if meta.get("cloud") else None,
        "port": PORT,
        "file_mounts": {ADAPTER_DIR: {"source": meta["adapter_uri"], "mode": "COPY"}},
        "service": {
            "readiness_probe": {
                "path": "/v1/models",
                "initial_delay_seconds": PROBE_DELAY_S,
                "timeout_seconds": 15,
            },
            "replica_policy": policy,
        },
    }
    if key:
        req["secrets"] = {"TG_ENGINE_KEY": key}
    return req


def status(service: str) -> dict[str, Any] | None:
    """The service as SkyServe sees it now, or None when there is none of that name."""
    found = bridge("serve_status", {"name": service}).get("services") or []
    return next((s for s in found if s.get("name") == service), None)


def up_or_adopt(meta: dict[str, Any]) -> dict[str, Any]:
    """Make the service the meta describes exist, once: adopt, update or up (see above).
    Returns what the journal adds: endpoint, how it was reached, SkyServe's version."""
    service = meta["service"]
    key = engine_key(service, create=True)
    now = status(service)
    if now is None:
        made = bridge("serve_up", request(meta, key), timeout=1800)
        return {"endpoint": made.get("endpoint"), "service_action": "up"}
    if now.get("spec_sha") == meta["spec_sha"]:
        return {"endpoint": now.get("endpoint"), "service_action": "adopted"}
    bridge("serve_update", {**request(meta, key), "mode": "rolling"}, timeout=1800)
    return {"endpoint": now.get("endpoint"), "service_action": "updated"}


def down(service: str, wait_s: float = DOWN_WAIT_S) -> None:
    """Take the service down and wait until SkyServe no longer lists it."""
    if status(service) is None:
        return
    bridge("serve_down", {"name": service})
    deadline = time.monotonic() + wait_s
    while status(service) is not None:
        if time.monotonic() > deadline:
            raise DeployError(
                f"{service} is still listed {wait_s:.0f} s after `serve down`",
                fix=f"sky serve status {service}; sky serve down {service}",
            )
        time.sleep(2)
    key_path(service).unlink(missing_ok=True)
