"""Deployments: a fine-tune put where it can answer, recorded in the journal, and one way to
talk to any of them (`chat`), so a user can smoke-test every target the same way.

Targets: `ollama` (a GGUF created in an Ollama server), `llamacpp` (a local GGUF, loaded
in-process on each chat), `openai` (the job's fine-tuned model id; nothing to upload),
`fireworks` (the LoRA on a dedicated deployment of its base), `bedrock` (merged weights through
Custom Model Import), `together` (a Together LoRA job's model on serverless multi-LoRA).
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# the journal side, re-exported: callers keep importing deployments/get_deployment from here
from gateway.deploy_journal import Deployment, get_deployment, record
from gateway.deploy_journal import deployments as deployments
from gateway.errors import ExportError, JobError, JournalError
from gateway.journal import Journal

AUTO_QUANT = "q4_k_m"
HOSTED = ("openai", "together", "fireworks", "bedrock")
TARGETS = ("ollama", "llamacpp", *HOSTED)


@dataclass(frozen=True)
class ChatReply:
    text: str
    finish_reason: str | None  # "stop" when the model ended its turn
    deployment: str
    raw: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "text": self.text,
            "finish_reason": self.finish_reason,
            "deployment": self.deployment,
        }


def _gguf_of(source: str, journal: Journal, progress: bool = False) -> tuple[Path, str | None]:
    """(GGUF file, artifact id) for a path, an export folder, an artifact id or a job id; a job
    without a GGUF export is exported first (AUTO_QUANT, verified)."""
    path = Path(source)
    if path.is_file() and path.suffix == ".gguf":
        return path.resolve(), None
    if path.is_dir():
        files = sorted(p for p in path.glob("*.gguf") if "adapter" not in p.name)
        if len(files) == 1:
            return files[0].resolve(), None
        raise ExportError(
            f"{path} holds {len(files)} model GGUF files; deploy needs exactly one",
            fix="name the .gguf file itself",
        )
    rows = [a for a in journal.artifacts() if a["id"] == source]
    if not rows:
        try:
            rec = journal.get(source)
        except JournalError:
            raise ExportError(
                f"'{source}' is not a GGUF file, an export folder, an artifact or a job",
                fix="give a .gguf path, or a job id after `tunegate export ID --to gguf`",
            ) from None
        rows = [a for a in journal.artifacts(rec.id) if a["kind"] == "gguf"]
        if not rows:  # export it now: q4_k_m, verified, as Ollama users usually run models
            from exporters.api import export

            result = export(rec.id, "gguf", quant=AUTO_QUANT, journal=journal, progress=progress)
            return result.files[0], result.artifact_id
    art = rows[-1]
    uri = Path(art["uri"])
    files = [uri] if uri.is_file() else sorted(uri.glob("*.gguf"))
    if not files:
        raise ExportError(f"artifact {art['id']} has no GGUF file at {uri}")
    return files[0], art["id"]


def deploy(
    source: str,
    to: str,
    *,
    name: str | None = None,
    system: str | None = None,
    template: str | None = None,
    stops: list[str] | None = None,
    host: str | None = None,
    progress: bool = False,
    journal: Journal | None = None,
) -> Deployment:
    """Deploy `source` (a job id, artifact id, GGUF file or export folder) to `to`."""
    journal = journal or Journal()
    if to not in TARGETS:
        raise ExportError(f"unknown deploy target {to!r}", fix=f"one of: {', '.join(TARGETS)}")
    if to != "ollama" and (template or stops):
        raise ExportError("--template and --stop apply to --to ollama")
    if to in HOSTED:
        from gateway import deploy_hosted

        deployer = {
            "openai": deploy_hosted.deploy_openai,
            "together": deploy_hosted.deploy_together,
            "fireworks": deploy_hosted.deploy_fireworks,
            "bedrock": deploy_hosted.deploy_bedrock,
        }[to]
        return deployer(source, name, journal)
    gguf, artifact_id = _gguf_of(source, journal, progress)
    name = name or gguf.stem.lower().replace("_", "-")
    if to == "llamacpp":
        dep = journal.add_deployment(
            artifact_id, "llamacpp", name, endpoint=str(gguf), state="live", meta={"system": system}
        )
        return get_deployment(dep, journal)
    from exporters.ollama import create, plan_for, write_modelfile

    plan = plan_for(gguf, system=system, template=template, stops=stops)
    modelfile = write_modelfile(plan)
    host = host or os.environ.get("OLLAMA_HOST") or "http://127.0.0.1:11434"
    say = (lambda m: print(f"ollama: {m}", file=sys.stderr)) if progress else None
    known = next(  # the export recorded the file's hash: no need to read it again
        (
            a["sha256"]
            for a in journal.artifacts()
            if a["id"] == artifact_id and a["uri"] == str(gguf)
        ),
        None,
    )
    label = name
    return record(
        journal,
        "ollama",
        label,
        lambda: {
            "details": create(plan, label, host=host, progress=say, sha256=known).get("details")
        },
        meta={
            "gguf": str(gguf),
            "modelfile": str(modelfile),
            "family": plan.family,
            "stops": plan.stops,
        },
        endpoint=host,
        artifact_id=artifact_id,
    )


def undeploy(ref: str, journal: Journal | None = None) -> Deployment:
    """Remove a deployment where it runs (Ollama: delete the model) and mark it removed."""
    journal = journal or Journal()
    dep = get_deployment(ref, journal)
    if dep.state == "removed":
        return dep
    if dep.target == "ollama":
        from exporters.ollama import delete

        delete(dep.name, host=dep.endpoint)
    elif dep.target == "fireworks":
        from providers.fireworks_serving import undeploy as fw_undeploy

        fw_undeploy(dep.meta)
    elif dep.target == "bedrock":
        from providers.bedrock_import import undeploy as bedrock_undeploy

        bedrock_undeploy(dep.meta)
    elif dep.target == "together" and dep.meta.get("endpoint_id"):
        from providers.together_serving import undeploy as together_undeploy

        together_undeploy(dep.meta)
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
    from gateway.chat_clients import CLIENTS

    text, reason, raw = CLIENTS[dep.target](dep, list(messages), max_tokens)
    return ChatReply(text, reason, dep.id, raw)
