"""Serving a LoRA on Fireworks: the adapter as a model (kind HF_PEFT_ADDON) — the output of a
Fireworks job is one already; any other PEFT adapter is uploaded — then a dedicated deployment
of its base with add-ons enabled, and the LoRA loaded onto it.

Ids are chosen here (`tg-<name>`), so a retried create answers 409 and is reused, never doubled.
A deployment is billed per GPU-hour while a replica runs; it is created scaling to zero.
"""

from __future__ import annotations

import contextlib
import re
from pathlib import Path
from typing import Any

from exporters.deploy.base import (
    DeployOptions,
    DeploySource,
    Messages,
    Prepared,
    Upstream,
    base_url,
    bearer,
    completion,
    hosted_base,
)
from gateway.errors import ExportError
from gateway.journal.deployments import ChatReply, Deployment
from gateway.util.retry import http_timeout_s, idempotent, poll_until
from providers.fireworks import Fireworks

ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors")
READY_WAIT_S = 1800.0


def _wait(what: str, fetch: Any, done: set[str], failed: set[str]) -> Any:
    """Poll `fetch()` until its state is in `done`; a state in `failed` is an error."""

    def verdict(obj: Any) -> bool | str:
        state = str(getattr(obj, "state", "") or "")
        return True if state in done else (state if state in failed else False)

    return poll_until(f"Fireworks {what}", fetch, verdict, wait_s=READY_WAIT_S, cap_s=10.0)


def slug(name: str) -> str:
    text = re.sub(r"[^a-z0-9-]+", "-", name.lower()).strip("-")
    from providers.hosted_jobs import name_limit

    return ("tg-" + text)[: name_limit("fireworks")].rstrip("-")


def _conflict_ok(fn: Any) -> None:
    """Create with a client-chosen id, retrying: "already exists" is the answer we wanted."""
    import fireworks

    def attempt() -> None:
        with contextlib.suppress(fireworks.ConflictError):
            fn()

    idempotent(attempt, what="create")


def upload_adapter(client: Any, adapter: Path, model_id: str, base: str) -> str:
    """Upload a PEFT adapter folder as model `model_id`; returns the model's resource name."""
    import httpx

    r, modules = _check_adapter(adapter)
    files = {n: adapter / n for n in ADAPTER_FILES}
    _conflict_ok(
        lambda: client.models.create(
            model_id=model_id,
            model={
                "kind": "HF_PEFT_ADDON",
                "peft_details": {"base_model": base, "r": r, "target_modules": sorted(modules)},
            },
        )
    )
    model = idempotent(lambda: client.models.get(model_id), what="model")
    if getattr(model, "state", None) != "READY":
        sizes = {n: str(p.stat().st_size) for n, p in files.items()}
        urls = idempotent(
            lambda: client.models.get_upload_endpoint(model_id, filename_to_size=sizes),
            what="upload endpoint",
        ).filename_to_signed_urls
        with httpx.Client(timeout=http_timeout_s()) as http:
            for name, path in files.items():
                headers = {
                    "Content-Type": "application/octet-stream",
                    "X-Goog-Content-Length-Range": f"{sizes[name]},{sizes[name]}",
                }

                def put(url: str = urls[name], path: Path = path, headers: dict = headers) -> None:
                    http.put(url, content=path.read_bytes(), headers=headers).raise_for_status()

                idempotent(put, what=f"upload {name}")
        idempotent(lambda: client.models.validate_upload(model_id), what="validate")
        model = _wait("model", lambda: client.models.get(model_id), {"READY"}, {"FAILED"})
    return str(model.name or f"accounts/{client.account_id}/models/{model_id}")


def _check_adapter(adapter: Path) -> tuple[int, list[str]]:
    """(rank, target modules) of a PEFT adapter Fireworks can serve; an `ExportError` else."""
    from exporters.adapter import adapter_config
    from gateway.catalog import load_catalog

    limits = load_catalog().rules.lora["fireworks"]
    config = adapter_config(adapter)
    r = int(config.get("r") or 0)
    if not limits.min_rank <= r <= limits.max_rank:
        raise ExportError(
            f"Fireworks serves LoRA ranks {limits.min_rank}-{limits.max_rank}; this adapter has {r}"
        )
    modules = config.get("target_modules") or []
    if isinstance(modules, str):
        raise ExportError(
            f"the adapter's target_modules is {modules!r}; Fireworks needs the module list",
            fix="train with explicit target_modules (e.g. [q_proj, k_proj, v_proj, o_proj])",
        )
    missing = [n for n in ADAPTER_FILES if not (adapter / n).is_file()]
    if missing:
        raise ExportError(f"{adapter} lacks {', '.join(missing)}")
    return r, list(modules)


def deploy(model: str, base: str, name: str) -> dict[str, Any]:
    """A scale-to-zero deployment of `base` with add-ons, and `model` loaded on it."""
    client = Fireworks().client()
    dep_id = slug(name)
    _conflict_ok(
        lambda: client.deployments.create(
            deployment_id=dep_id,
            base_model=base,
            enable_addons=True,
            min_replica_count=0,
            max_replica_count=1,
            display_name=name,
        )
    )
    deployment = _wait(
        "deployment", lambda: client.deployments.get(dep_id), {"READY"}, {"FAILED", "DELETED"}
    )
    dep_name = str(deployment.name or f"accounts/{client.account_id}/deployments/{dep_id}")
    loaded = idempotent(
        lambda: client.lora.load(model=model, deployment=dep_name, display_name=name),
        what="load LoRA",
    )
    loaded_id = str(loaded.name).rsplit("/", 1)[-1]
    _wait(
        "LoRA load",
        lambda: client.lora.get(loaded_id),
        {"DEPLOYED"},
        {"FAILED", "UNDEPLOYING"},
    )
    return {
        "model": model,
        "deployment": dep_name,
        "deployed_model": str(loaded.name),
        "endpoint": f"{model}#{dep_name}",
        "billing": "dedicated deployment, billed per GPU-hour while a replica runs (min 0)",
    }


def undeploy(meta: dict[str, Any]) -> None:
    import fireworks

    client = Fireworks().client()
    for fn in (
        lambda: client.lora.unload(str(meta["deployed_model"]).rsplit("/", 1)[-1]),
        lambda: client.deployments.delete(str(meta["deployment"]).rsplit("/", 1)[-1]),
    ):
        with contextlib.suppress(fireworks.NotFoundError):  # already gone
            idempotent(fn, what="undeploy")


class FireworksServing:
    """A Fireworks job's LoRA (already a Fireworks model), or any PEFT adapter uploaded as
    one, loaded onto a scale-to-zero deployment of its base."""

    target = "fireworks"
    wants = "job"
    hosts = "hosted"
    options: frozenset[str] = frozenset()

    def price(self, dep: Deployment, base: str | None, catalog: Any) -> Any:
        """Serverless per token by the base's size band where LoRA runs serverless; else the
        deployment's GPUs by the hour."""
        from gateway.cost.deployments import band_price, dedicated_price, per_token_price

        row = catalog.prices["serving"][self.target]
        if row.get("serverless_lora") and base:
            usd = band_price(row, "serverless_per_1m_tokens_bands", catalog.model(base).size_b)
            if usd is not None:
                return per_token_price("Fireworks serverless", usd, usd, row["source"])
        return dedicated_price("Fireworks", row, dep)

    def accepts(self, src: DeploySource) -> str | None:
        if src.job is not None and src.job.state != "succeeded":
            return f"job {src.job.id} is {src.job.state}; only a succeeded job can be deployed"
        return None

    def prepare(self, src: DeploySource, name: str | None, options: DeployOptions) -> Prepared:
        from providers.hosted_jobs import model_id

        if src.job is not None and src.job.provider == "fireworks":
            model = str((src.job.remote or {}).get("output_model"))
            meta = {"model": model, "base": model_id(src.job)}
            return Prepared(name or model.rsplit("/", 1)[-1], meta)
        adapter = src.path or Path(src.fetch().uri)  # type: ignore[misc]
        _check_adapter(adapter)
        meta = {"adapter": str(adapter), "base": hosted_base(adapter, "fireworks")}
        return Prepared(name or adapter.name, meta)

    def deploy(self, prepared: Prepared) -> dict[str, Any]:
        meta, name = prepared.meta, prepared.name
        model = meta.get("model")
        if model is None:
            client = Fireworks().client()
            model = upload_adapter(client, Path(meta["adapter"]), slug(name), meta["base"])
        return deploy(model, meta["base"], name)

    def undeploy(self, dep: Deployment) -> None:
        undeploy(dep.meta)

    def chat(self, dep: Deployment, messages: Messages, max_tokens: int) -> ChatReply:
        client = Fireworks().client()
        return completion("Fireworks", client, str(dep.endpoint), messages, max_tokens, dep.id)

    def upstream(self, dep: Deployment) -> Upstream:
        url = base_url("FIREWORKS_BASE_URL", "https://api.fireworks.ai")
        return Upstream("http", str(dep.endpoint), url, bearer("FIREWORKS_API_KEY", "Fireworks"))
