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
import shlex
import time
from pathlib import Path
from typing import Any

from gateway.catalog import tunegate_home
from gateway.errors import DeployError
from providers.runners.sky_jobs import bridge

PORT = 8080
VLLM = "vllm>=0.8"
ROOT = "/tunegate"  # on a replica: adapters/<member>/ (vLLM) or model/<file>.gguf (llama.cpp)
KEY_VAR = "$TG_ENGINE_KEY"  # the engine key, a task secret, expanded by the replica's shell
LLAMA_HOME = "$HOME/tunegate-llama"  # where a replica builds llama-server once
LLAMA_SLOTS = 8  # requests llama-server decodes together on a replica
PROBE_DELAY_S = 1200  # SkyServe's default: the image, the weights and the engine's warm-up
DOWN_WAIT_S = 600.0
# the spec fields a running service must match to be adopted as it is
SPEC_KEYS = ("engine", "base", "members", "model_uri", "llama_cpp", "context", "accelerator",
             "gpus", "cloud", "min_replicas", "max_replicas", "target_qps", "spot",
             "ondemand_base")  # fmt: skip
# llama.cpp's server target as `make` builds it here (Makefile), plus CUDA on the replica
LLAMA_CMAKE = ("-DCMAKE_BUILD_TYPE=Release -DBUILD_SHARED_LIBS=OFF -DLLAMA_BUILD_SERVER=ON "
               "-DLLAMA_BUILD_TOOLS=ON -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF "
               "-DLLAMA_BUILD_APP=OFF -DLLAMA_BUILD_UI=OFF -DLLAMA_USE_PREBUILT_UI=OFF "
               "-DLLAMA_OPENSSL=OFF -DGGML_CUDA=${TG_GGML_CUDA:-ON}")  # fmt: skip


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


def engine_argv(
    meta: dict[str, Any],
    *,
    root: str = ROOT,
    host: str = "0.0.0.0",
    port: int = PORT,
    binary: str | None = None,
) -> list[str]:
    """The replica's engine, behind the engine key (`KEY_VAR`): vLLM's OpenAI server with every
    member's adapter (`--lora-modules`, one per fine-tune sharing the service), or llama.cpp's
    server on a full fine-tune's GGUF. `root`/`host`/`port`/`binary` let a test run the very
    same command on this machine."""
    if meta["engine"] == "llamacpp":
        model = f"{root}/model/{str(meta['model_uri']).rsplit('/', 1)[-1]}"
        ctx = int(meta.get("context") or 2048) * LLAMA_SLOTS
        name = str(meta["members"][0]["name"])
        return [binary or f"{LLAMA_HOME}/llama-server", "--model", model, "--host", host,
                "--port", str(port), "--api-key", KEY_VAR, "--alias", name, "--n-gpu-layers",
                "999", "--ctx-size", str(ctx), "--parallel", str(LLAMA_SLOTS)]  # fmt: skip
    members = list(meta["members"])
    argv = [binary or "vllm", "serve", str(meta["base"]), "--host", host, "--port", str(port),
            "--api-key", KEY_VAR, "--tensor-parallel-size", str(int(meta.get("gpus") or 1)),
            "--enable-lora", "--max-loras", str(len(members)),
            "--max-lora-rank", str(meta["max_lora_rank"]), "--lora-modules"]  # fmt: skip
    for m in members:
        module = {"name": m["name"], "path": f"{root}/adapters/{m['name']}",
                  "base_model_name": meta["base"]}  # fmt: skip
        argv.append(json.dumps(module))
    return argv


def run_command(meta: dict[str, Any]) -> str:
    """`engine_argv` as the replica's shell runs it: the key (and $HOME) expanded there, the
    rest quoted."""
    return " ".join(a if a.startswith("$") else shlex.quote(a) for a in engine_argv(meta))


def setup_command(meta: dict[str, Any]) -> str:
    """vLLM from PyPI, or llama-server built (once per replica) from the llama.cpp sources of
    the llama-cpp-python release whose converter wrote the GGUF, with CUDA."""
    if meta["engine"] != "llamacpp":
        return f"pip install {shlex.quote(VLLM)}"
    sdist = f"llama-cpp-python=={meta['llama_cpp']}"
    home = LLAMA_HOME
    return " && ".join([
        "set -e", f"mkdir -p {home}",
        f"if [ ! -x {home}/llama-server ]; then python3 -m pip install --quiet cmake",
        "python3 -m pip download --no-deps --no-binary llama-cpp-python"
        f" {shlex.quote(sdist)} -d {home}/sdist",
        f"mkdir -p {home}/src && tar xzf {home}/sdist/llama_cpp_python-*.tar.gz -C {home}/src"
        " --strip-components=3 --wildcards '*/vendor/llama.cpp/*'",
        f"cmake -S {home}/src -B {home}/out {LLAMA_CMAKE}",
        f"cmake --build {home}/out --target llama-server -j$(nproc)",
        f"cp {home}/out/bin/llama-server {home}/llama-server; fi",
    ])  # fmt: skip


def _mounts(meta: dict[str, Any]) -> dict[str, Any]:
    """Each adapter (or the GGUF's folder) copied from the bucket to the replica: `COPY`, not a
    mount, so clouds that cannot mount a bucket (RunPod, Vast) serve too."""
    if meta["engine"] == "llamacpp":
        folder = str(meta["model_uri"]).rsplit("/", 1)[0]
        return {f"{ROOT}/model": {"source": folder, "mode": "COPY"}}
    return {f"{ROOT}/adapters/{m['name']}": {"source": m["uri"], "mode": "COPY"}
            for m in meta["members"]}  # fmt: skip


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
        "setup": setup_command(meta),
        "run": run_command(meta),
        "envs": {"TG_SPEC_SHA": meta["spec_sha"], "VLLM_NO_USAGE_STATS": "1"},
        "accelerators": [{"name": meta["accelerator"], "count": int(meta.get("gpus") or 1)}],
        "spot": bool(meta.get("spot")),
        "infra": [meta["cloud"]] if meta.get("cloud") else None,
        "port": PORT,
        "file_mounts": _mounts(meta),
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


def status(service: str, *, reasons: bool = False) -> dict[str, Any] | None:
    """The service as SkyServe sees it now, or None when there is none of that name. With
    `reasons`, each failed replica says why, from its log (any engine key in it hidden)."""
    found = bridge("serve_status", {"name": service, "reasons": reasons}).get("services") or []
    now = next((s for s in found if s.get("name") == service), None)
    for replica in (now or {}).get("replicas") or []:
        if replica.get("reason"):
            replica["reason"] = re.sub(r"tge-[A-Za-z0-9_-]{8,}", "<engine key>", replica["reason"])
    return now


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
