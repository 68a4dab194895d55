"""Serving on Together with its v2 (project-scoped) API, as the official `together` SDK speaks
it: upload weights as a project model (multipart, with S3-style ETags), then a dedicated
endpoint with one deployment — of the model itself, or of its base with the adapter attached.

Needs `TOGETHER_PROJECT_ID`. Names are chosen here (`tg-<name>`), and an existing model or
endpoint of that name is reused, so a retried deploy never makes a second one. Serverless LoRA
(no endpoint at all) needs nothing created: a Together LoRA job on such a base is journaled
live at once and answers per token.
"""

from __future__ import annotations

import contextlib
import hashlib
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
from gateway.errors import ProviderError
from gateway.journal.deployments import ChatReply, Deployment
from gateway.util.retry import http_timeout_s, idempotent, poll_until
from gateway.util.secrets import require

# part size of Together's own uploader (together/lib/cli/api/models/upload.py)
PART_BYTES = 20 * 1024 * 1024
WAIT_S = 3600.0
IDLE_STOP_MINUTES = 60  # the deployment stops itself after an hour without traffic


def client() -> Any:
    from together import Together

    return Together(
        api_key=require("TOGETHER_API_KEY", "Together"),
        project_id=require("TOGETHER_PROJECT_ID", "Together (v2 models and endpoints)"),
        max_retries=0,
        timeout=http_timeout_s(),
    )


def slug(name: str) -> str:
    return ("tg-" + re.sub(r"[^a-z0-9-]+", "-", name.lower()).strip("-"))[:60].rstrip("-")


def _etag(path: Path) -> tuple[str, int]:
    """(S3-style ETag: md5, or md5 of part md5s + "-N"; number of parts) at PART_BYTES."""
    digests = []
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(PART_BYTES), b""):
            digests.append(hashlib.md5(block).digest())
    if len(digests) == 1:
        return digests[0].hex(), 1
    return f"{hashlib.md5(b''.join(digests)).hexdigest()}-{len(digests)}", len(digests)


def _find(pages: Any, name: str) -> Any:
    return next((x for x in pages if x.name == name or str(x.name).endswith("/" + name)), None)


def upload(tg: Any, folder: Path, name: str, base_id: str, kind: str) -> dict[str, str]:
    """Register `folder` as a project model (`kind` model|adapter) and upload its files."""
    import httpx
    import together

    project = tg._get_project_id_path_param()
    model = idempotent(lambda: _find(tg.models.list(), name), what="list models")
    if model is None:
        try:
            model = tg.models.create(base_model_id=base_id, name=name, type=kind)
        except together.ConflictError:  # an earlier, unanswered create of ours
            model = idempotent(lambda: _find(tg.models.list(), name), what="list models")
    files = sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))
    local = {p.name: (p, *_etag(p)) for p in files if p.stat().st_size > 0}
    body = {
        "objectId": model.id,
        "files": [{"path": n, "hash": h, "numParts": k} for n, (_, h, k) in local.items()],
    }
    plan = idempotent(
        lambda: tg.post(f"/v2/projects/{project}/models/upload/create", cast_to=object, body=body),
        what="upload create",
    )
    done = []
    with httpx.Client(timeout=httpx.Timeout(1800.0)) as http:
        for remote in plan.get("files") or []:
            path, etag, _ = local[remote["path"]]
            if remote.get("skipUpload"):  # Together already has these exact bytes
                done.append({"path": remote["path"], "hash": etag, "skipUpload": True})
                continue
            parts = []
            for part in remote.get("parts") or []:
                number = int(part["partNumber"])
                with path.open("rb") as fh:
                    fh.seek((number - 1) * PART_BYTES)
                    data = fh.read(PART_BYTES)

                def put(part: dict = part, data: bytes = data, file: str = path.name) -> str:
                    res = http.put(
                        part["url"], content=data, headers=dict(part.get("headers") or {})
                    )
                    res.raise_for_status()
                    tag = res.headers.get("ETag", "").strip().strip('"')
                    if tag != hashlib.md5(data).hexdigest():
                        raise ProviderError(
                            f"part {part['partNumber']} of {file} came back altered"
                        )
                    return tag

                parts.append({"partNumber": number, "hash": idempotent(put, what="upload part")})
            done.append(
                {
                    "path": remote["path"],
                    "hash": etag,
                    "uploadDetails": {"uploadId": remote.get("uploadId", ""), "parts": parts},
                }
            )
    complete = idempotent(
        lambda: tg.post(
            f"/v2/projects/{project}/models/upload/complete",
            cast_to=object,
            body={"objectId": model.id, "files": done},
        ),
        what="upload complete",
    )
    return {
        "model_id": model.id,
        "model_name": model.name,
        "revision_id": complete.get("revisionId", ""),
    }


def _wait(what: str, fetch: Any, ready: Any) -> Any:
    return poll_until(f"Together {what}", fetch, ready, wait_s=WAIT_S, cap_s=15.0)


def _deployment_ready(dep: Any) -> bool | str:
    state = str(dep.status.state)
    if state == "DEPLOYMENT_STATE_FAILED":
        return dep.status.message or state
    return state == "DEPLOYMENT_STATE_READY"


def _adapter_ready(att: Any) -> bool | str:
    states = [str(c.state) for c in att.per_cluster or []]
    failed = [c for c in att.per_cluster or [] if str(c.state) == "ADAPTER_LOAD_STATE_FAILED"]
    if failed:
        return failed[0].message or "adapter failed to load"
    return bool(states) and all(s == "ADAPTER_LOAD_STATE_READY" for s in states)


def deploy(tg: Any, name: str, serve_model: str, adapter: dict[str, str] | None) -> dict[str, Any]:
    """A dedicated endpoint named `name` serving `serve_model` (+ `adapter` attached)."""
    import together

    endpoint = idempotent(lambda: _find(tg.endpoints.list(), name), what="list endpoints")
    if endpoint is None:
        try:
            endpoint = tg.endpoints.create(name=name)
        except together.ConflictError:
            endpoint = idempotent(lambda: _find(tg.endpoints.list(), name), what="list endpoints")
    existing = [d for d in endpoint.deployments or [] if d.name == name]
    dep_id = (
        existing[0].id
        if existing
        else tg.endpoints.deployments.create(
            endpoint.id,
            name=name,
            model_id=serve_model,
            autoscaling={"min_replicas": 1, "max_replicas": 1},
            inactive_timeout=IDLE_STOP_MINUTES,
        ).id
    )
    _wait(
        "deployment",
        lambda: tg.endpoints.deployments.retrieve(dep_id, endpoint_id=endpoint.id),
        _deployment_ready,
    )
    meta: dict[str, Any] = {
        "endpoint_id": endpoint.id,
        "deployment_id": dep_id,
        "chat_model": endpoint.name,
        "billing": f"dedicated endpoint, billed per GPU-hour; stops after {IDLE_STOP_MINUTES} idle minutes",
    }
    if adapter:
        revision = (
            {"adapter_revision_id": adapter["revision_id"]} if adapter.get("revision_id") else {}
        )
        att = tg.endpoints.adapters.create(
            endpoint_id=endpoint.id,
            deployment_id=dep_id,
            adapter_model_id=adapter["model_id"],
            **revision,
        )
        _wait(
            "adapter load",
            lambda: tg.endpoints.adapters.retrieve(
                att.id, endpoint_id=endpoint.id, deployment_id=dep_id
            ),
            _adapter_ready,
        )
        meta.update(adapter_attachment=att.id, chat_model=adapter["model_name"])
    return meta


def undeploy(meta: dict[str, Any]) -> None:
    import together

    tg = client()
    for fn in (
        lambda: tg.endpoints.deployments.delete(
            meta["deployment_id"], endpoint_id=meta["endpoint_id"]
        ),
        lambda: tg.endpoints.delete(meta["endpoint_id"]),
    ):
        with contextlib.suppress(together.NotFoundError):  # already gone
            idempotent(fn, what="undeploy")


def deploy_folder(folder: Path, name: str, base_id: str) -> dict[str, Any]:
    """Upload a PEFT adapter (served on its base) or a full model folder, then serve it."""
    tg = client()
    name = slug(name)
    if (folder / "adapter_config.json").is_file():
        up = upload(tg, folder, name, base_id, "adapter")
        return {**deploy(tg, name, base_id, up), "model": up}
    up = upload(tg, folder, name, base_id, "model")
    return {**deploy(tg, name, up["model_id"], None), "model": up}


class TogetherServing:
    """A Together LoRA job on a serverless-LoRA base: its model, per token, nothing created.
    Anything else (another base, a full fine-tune, a local weights folder) is uploaded as a
    project model and served on a dedicated endpoint."""

    target = "together"
    wants = "job"
    hosts = "hosted"
    options: frozenset[str] = frozenset()

    def price(self, dep: Deployment, base: str | None, catalog: Any) -> Any:
        """Serverless LoRA per token where the base offers it; else the dedicated endpoint."""
        from gateway.cost.deployments import dedicated_price, hosted_id, per_token_price

        row = catalog.prices["serving"][self.target]
        meta = dep.meta or {}
        if not (meta.get("endpoint_id") or meta.get("deployment")):
            price = row["serverless_per_1m_tokens"].get(hosted_id(catalog, base, self.target) or "")
            if price:
                usd = float(price["usd"])
                return per_token_price("Together serverless LoRA", usd, usd, row["source"])
        return dedicated_price("Together", row, dep)

    def accepts(self, src: DeploySource) -> str | None:
        job = src.job
        if job is not None and (job.provider != "together" or job.state != "succeeded"):
            return f"job {job.id} is a {job.state} {job.provider} job, not a finished Together job"
        return None

    def prepare(self, src: DeploySource, name: str | None, options: DeployOptions) -> Prepared:
        from gateway.catalog import load_catalog

        if src.job is None:
            folder = Path(str(src.path))
            meta = {"job": None, "folder": str(folder), "base": hosted_base(folder, "together")}
            return Prepared(name or folder.name, meta)
        rec = src.job
        hosted = load_catalog().model(rec.base_model).hosted.get("together")
        remote = rec.remote or {}
        model = str(remote.get("model_output_name"))
        if hosted and hosted.serverless_lora and remote.get("training_type") == "Lora":
            serving = "serverless LoRA, billed per token at the base's rate"
            meta = {"job": rec.id, "serving": serving}
            return Prepared(name or model, meta, endpoint=model, remote=False)
        art = src.fetch()  # type: ignore[misc]  # the adapter or the full weights, downloaded
        meta = {"job": rec.id, "folder": art.uri, "base": hosted.id if hosted else rec.base_model}
        return Prepared(name or model.rsplit("/", 1)[-1], meta)

    def deploy(self, prepared: Prepared) -> dict[str, Any]:
        meta = prepared.meta
        made = deploy_folder(Path(meta["folder"]), prepared.name, meta["base"])
        return {**made, "endpoint": made["chat_model"]}

    def undeploy(self, dep: Deployment) -> None:
        if dep.meta.get("endpoint_id"):  # serverless LoRA has nothing to remove
            undeploy(dep.meta)

    def chat(self, dep: Deployment, messages: Messages, max_tokens: int) -> ChatReply:
        from providers.together import Together

        client = Together().client(max_retries=2)
        return completion("Together", client, str(dep.endpoint), messages, max_tokens, dep.id)

    def upstream(self, dep: Deployment) -> Upstream:
        url = base_url("TOGETHER_BASE_URL", "https://api.together.ai")
        return Upstream("http", str(dep.endpoint), url, bearer("TOGETHER_API_KEY", "Together"))
