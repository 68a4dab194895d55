"""Serving on Bedrock through Custom Model Import: merged Hugging Face weights uploaded to S3
(with checksums), imported with `CreateModelImportJob`, then called with the Converse API.

Bedrock does not import LoRA adapters, so an adapter is merged first (and the merge verified).
The import job name and its `clientRequestToken` come from the model name, so a retried create
finds the same job. Billing is per Custom Model Unit per minute while the model is active.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

from exporters.deploy.base import DeployOptions, DeploySource, Messages, Prepared, Upstream
from gateway.errors import DeployError, ExportError, ProviderError
from gateway.journal.deployments import ChatReply, Deployment
from gateway.util.retry import describe, idempotent, poll_until

SIDE_FILES = re.compile(
    r"(config|generation_config|tokenizer(_config)?|special_tokens_map)\.json$|tokenizer\.model$|\.safetensors(\.index\.json)?$|chat_template\.jinja$"
)
WAIT_S = 7200.0


def _slug(name: str) -> str:
    return re.sub(r"[^a-zA-Z0-9-]+", "-", name).strip("-")[:50] or "model"


def check_architecture(model: Path) -> str:
    """Bedrock's name for the model's architecture, if Custom Model Import takes it
    (rules.yaml: architectures.bedrock_import)."""
    from gateway.catalog import load_catalog

    accepts = load_catalog().rules.architectures["bedrock_import"].accepts
    cfg = json.loads((model / "config.json").read_text())
    kind = str(cfg.get("model_type") or "")
    if kind not in accepts:
        raise ExportError(
            f"Bedrock Custom Model Import does not take {kind or 'this'} models",
            fix="supported: " + ", ".join(sorted(set(accepts.values()))),
        )
    if not list(model.glob("*.safetensors")):
        raise ExportError(f"{model} has no .safetensors weights; Bedrock imports only those")
    return accepts[kind]


def deploy(model: Path, name: str, *, spec_s3: str | None = None) -> dict[str, Any]:
    """Upload `model` to S3, import it, wait until it is ready; returns the deployment meta."""
    from botocore.exceptions import ClientError

    from gateway.catalog.config import load_config
    from providers.bedrock import Bedrock
    from providers.s3 import upload_verified

    provider = Bedrock()
    settings = load_config().bedrock
    base = spec_s3 or settings.s3_uri
    if not base:
        raise DeployError(
            "Bedrock imports models from S3 and no bucket is configured",
            fix="set bedrock.s3_uri in the tunegate config or TUNEGATE_BEDROCK_S3_URI",
        )
    role = provider.role_arn()
    region = settings.region or _session_region() or "us-east-1"
    arch = check_architecture(model)
    slug = _slug(name)
    prefix = f"{base.rstrip('/')}/imports/{slug}"
    s3 = provider.client("s3", region, retries=3)
    files = sorted(p for p in model.iterdir() if p.is_file() and SIDE_FILES.search(p.name))
    digest = hashlib.sha256()
    for path in files:
        obj = upload_verified(s3, path, f"{prefix}/{path.name}")
        digest.update(f"{path.name} {obj.sha256}\n".encode())
    bedrock = provider.client("bedrock", region)
    job_name = f"tg-import-{slug}-{digest.hexdigest()[:8]}"
    try:
        bedrock.create_model_import_job(
            jobName=job_name,
            importedModelName=slug,
            roleArn=role,
            modelDataSource={"s3DataSource": {"s3Uri": prefix + "/"}},
            clientRequestToken=digest.hexdigest()[:64],
            jobTags=[{"key": "tunegate-model", "value": slug}],
        )
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") not in (
            "ConflictException",
            "ResourceInUseException",
        ):
            raise ProviderError(f"Bedrock refused the import: {exc}") from None
    job = _wait_import(bedrock, job_name)
    return {
        "model_arn": job["importedModelArn"],
        "import_job": job_name,
        "s3_uri": prefix + "/",
        "region": region,
        "architecture": arch,
        "billing": "Custom Model Units per minute while active (5-minute windows) + storage",
    }


def _session_region() -> str | None:
    import boto3

    return boto3.session.Session().region_name


def _wait_import(bedrock: Any, job_name: str) -> dict[str, Any]:
    def verdict(job: dict[str, Any]) -> bool | str:
        if job.get("status") == "Failed":
            return str(job.get("failureMessage") or "Failed")
        return job.get("status") == "Completed" and bool(job.get("importedModelArn"))

    return poll_until(
        f"Bedrock import {job_name}",
        lambda: bedrock.get_model_import_job(jobIdentifier=job_name),
        verdict,
        wait_s=WAIT_S,
        cap_s=30.0,
    )


def undeploy(meta: dict[str, Any]) -> None:
    from botocore.exceptions import ClientError

    from providers.bedrock import Bedrock

    bedrock = Bedrock().client("bedrock", meta["region"])
    try:
        idempotent(
            lambda: bedrock.delete_imported_model(modelIdentifier=meta["model_arn"]),
            what="delete imported model",
        )
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") != "ResourceNotFoundException":
            raise


def chat(
    meta: dict[str, Any], messages: list[dict[str, str]], max_tokens: int
) -> tuple[str, str | None, dict]:
    """One Converse request (system messages go in `system`, turns in `messages`)."""
    from providers.bedrock import Bedrock

    runtime = Bedrock().client("bedrock-runtime", meta["region"], retries=3)
    res = runtime.converse(
        modelId=meta["model_arn"],
        system=[{"text": m["content"]} for m in messages if m["role"] == "system"],
        messages=[
            {"role": m["role"], "content": [{"text": m["content"]}]}
            for m in messages
            if m["role"] in ("user", "assistant")
        ],
        inferenceConfig={"maxTokens": max_tokens, "temperature": 0.0},
    )
    parts = res.get("output", {}).get("message", {}).get("content") or []
    text = "".join(p.get("text", "") for p in parts)
    reason = {"end_turn": "stop", "stop_sequence": "stop", "max_tokens": "length"}.get(
        str(res.get("stopReason")), res.get("stopReason")
    )
    return text, reason, {k: v for k, v in res.items() if k != "ResponseMetadata"}


class BedrockImport:
    """Merged weights (the facade merges an adapter first) imported into Bedrock."""

    target = "bedrock"
    wants = "merged"
    hosts = "hosted"
    options: frozenset[str] = frozenset()

    def price(self, dep: Deployment, base: str | None, catalog: Any) -> Any:
        """Custom Model Import bills Custom Model Units per minute while the model is active."""
        from gateway.cost.deployments import Price

        bed = catalog.prices["serving"][self.target]
        per_min = float(bed["custom_model_import_usd_per_cmu_minute"])
        units = int((dep.meta or {}).get("model_units") or 1)
        return Price(
            "hourly",
            f"Bedrock imported model, {units} CMU x ${per_min}/min while active",
            usd_per_hour=units * per_min * 60,
            source=bed["source"],
        )

    def accepts(self, src: DeploySource) -> str | None:
        try:
            check_architecture(Path(str(src.path)))
        except ExportError as exc:
            return exc.message + (f" ({exc.fix})" if exc.fix else "")
        return None

    def prepare(self, src: DeploySource, name: str | None, options: DeployOptions) -> Prepared:
        model = Path(str(src.path))
        return Prepared(name or model.name, {"model": str(model)}, artifact_id=src.artifact_id)

    def deploy(self, prepared: Prepared) -> dict[str, Any]:
        made = deploy(Path(prepared.meta["model"]), prepared.name)
        return {**made, "endpoint": made["model_arn"]}

    def undeploy(self, dep: Deployment) -> None:
        undeploy(dep.meta)

    def chat(self, dep: Deployment, messages: Messages, max_tokens: int) -> ChatReply:
        try:
            text, reason, raw = chat(dep.meta, messages, max_tokens)
        except Exception as exc:  # any botocore failure becomes one line, with no key in it
            raise ProviderError(f"Bedrock Converse failed: {describe(exc)}") from None
        usage = raw.get("usage") or {}  # Converse counts inputTokens / outputTokens
        return ChatReply(
            text,
            reason,
            dep.id,
            raw,
            prompt_tokens=int(usage.get("inputTokens") or 0),
            completion_tokens=int(usage.get("outputTokens") or 0),
        )

    def upstream(self, dep: Deployment) -> Upstream:
        return Upstream("chat", str(dep.endpoint))  # Converse, through `chat`
