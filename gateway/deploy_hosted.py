"""Hosted deployments: each target's own way of putting a fine-tune where it answers.

OpenAI serves what it trained; Together serves a LoRA serverless or on a dedicated endpoint;
Fireworks loads the LoRA onto a deployment of its base; Bedrock imports merged weights. Each
records a journal deployment first (pending), then live or failed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gateway.deploy_journal import Deployment, get_deployment, record
from gateway.errors import ExportError
from gateway.journal import Journal


def deploy_openai(source: str, name: str | None, journal: Journal) -> Deployment:
    """OpenAI serves the fine-tuned model it made: the deployment records its id."""
    from gateway.jobs import Job

    rec = journal.get(source)
    if rec.provider != "openai":
        raise ExportError(f"job {rec.id} ran on {rec.provider}, not OpenAI")
    art = Job(rec.id, journal).artifact()
    dep = journal.add_deployment(
        art.id, "openai", name or art.uri, endpoint=art.uri, state="live", meta={"job": rec.id}
    )
    return get_deployment(dep, journal)


def _adapter_of(source: str, journal: Journal) -> Path:
    """A PEFT adapter folder from a path, or from a job's fetched artifact."""
    path = Path(source)
    if path.is_dir():
        return path
    from gateway.jobs import Job

    rec = journal.get(source)
    art = Job(rec.id, journal).artifact()
    if art.kind != "adapter":
        raise ExportError(f"job {rec.id} produced a {art.kind}, not a LoRA adapter")
    return Path(art.uri)


def _hosted_base(adapter: Path, provider: str) -> str:
    import json

    from gateway.catalog import load_catalog

    cfg = json.loads((adapter / "adapter_config.json").read_text())
    base = str(cfg.get("base_model_name_or_path") or "")
    hosted = load_catalog().model(base).hosted.get(provider)
    if hosted is None:
        raise ExportError(
            f"{provider} does not serve {base}", fix="tunegate models lists what it serves"
        )
    return hosted.id


def deploy_fireworks(source: str, name: str | None, journal: Journal) -> Deployment:
    from providers import fireworks_serving as fw
    from providers._hosted_jobs import model_id

    rec = None
    if not Path(source).is_dir():
        rec = journal.get(source)
    if rec is not None and rec.provider == "fireworks":
        if rec.state != "succeeded":
            raise ExportError(f"job {rec.id} is {rec.state}; only a succeeded job can be deployed")
        model, base = str((rec.remote or {}).get("output_model")), model_id(rec)
        name = name or model.rsplit("/", 1)[-1]
    else:
        adapter = _adapter_of(source, journal)
        base = _hosted_base(adapter, "fireworks")
        name = name or adapter.name
        from providers.fireworks import Fireworks

        model = fw.upload_adapter(Fireworks().client(), adapter, fw.slug(name), base)
    label = name
    return record(
        journal,
        "fireworks",
        label,
        lambda: fw.deploy(model, base, label),
        meta={"model": model},
        endpoint_key="endpoint",
    )


def deploy_bedrock(source: str, name: str | None, journal: Journal) -> Deployment:
    """Merged weights (an adapter is merged first) imported with Custom Model Import."""
    from providers import bedrock_import

    model = bedrock_import.merged_model(source, journal)
    label = name or model.name
    bedrock_import.check_architecture(model)
    return record(
        journal,
        "bedrock",
        label,
        lambda: bedrock_import.deploy(model, label),
        meta={"model": str(model)},
        endpoint_key="model_arn",
    )


def deploy_together(source: str, name: str | None, journal: Journal) -> Deployment:
    """A Together LoRA job on a base with serverless multi-LoRA: its model answers per token and
    nothing is created. Anything else (another base, a full fine-tune, local weights) is
    uploaded as a project model and served on a dedicated endpoint."""
    from gateway.catalog import load_catalog
    from gateway.jobs import Job

    catalog = load_catalog()
    if Path(source).is_dir():
        folder = Path(source)
        base = _together_base(folder, catalog)
        return _together_dedicated(folder, name or folder.name, base, None, journal)
    job = Job(source, journal)
    rec = job.status()
    if rec.provider != "together" or rec.state != "succeeded":
        raise ExportError(
            f"job {rec.id} is a {rec.state} {rec.provider} job, not a finished Together job"
        )
    hosted = catalog.model(rec.base_model).hosted.get("together")
    remote = rec.remote or {}
    model = str(remote.get("model_output_name"))
    if hosted and hosted.serverless_lora and remote.get("training_type") == "Lora":
        dep = journal.add_deployment(
            None,
            "together",
            name or model,
            endpoint=model,
            state="live",
            meta={"job": rec.id, "serving": "serverless LoRA, billed per token at the base's rate"},
        )
        return get_deployment(dep, journal)
    base = hosted.id if hosted else rec.base_model
    art = job.artifact()  # the adapter or the full weights, downloaded
    return _together_dedicated(
        Path(art.uri), name or model.rsplit("/", 1)[-1], base, rec.id, journal
    )


def _together_base(folder: Path, catalog: Any) -> str:
    import json

    cfg = folder / (
        "adapter_config.json" if (folder / "adapter_config.json").is_file() else "export.json"
    )
    data = json.loads(cfg.read_text()) if cfg.is_file() else {}
    base = data.get("base_model_name_or_path") or (data.get("source") or {}).get("base")
    hosted = catalog.model(str(base)).hosted.get("together") if base else None
    if hosted is None:
        raise ExportError(
            f"cannot tell which Together base model {folder} derives from",
            fix="deploy an adapter folder (its adapter_config.json names the base) or an export folder",
        )
    return hosted.id


def _together_dedicated(
    folder: Path, name: str, base: str, job_id: str | None, journal: Journal
) -> Deployment:
    from providers import together_serving

    return record(
        journal,
        "together",
        name,
        lambda: together_serving.deploy_folder(folder, name, base),
        meta={"job": job_id},
        endpoint_key="chat_model",
    )
