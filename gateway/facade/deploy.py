"""Deployments: a fine-tune put where it can answer, recorded in the journal, and one way to
talk to any of them (`chat`), so a user can smoke-test every target the same way.

This facade resolves the source (`gateway.facade.sources`), journals pending → live | failed, and
dispatches through `exporters.deploy.DEPLOYERS`; everything target-specific lives in that
target's module (Ollama, llama.cpp, OpenAI, Together, Fireworks, Bedrock).
"""

from __future__ import annotations

from typing import Any

from exporters.deploy import TARGETS, get_deployer
from exporters.deploy.base import DeployOptions, Prepared
from gateway.errors import DeployError, JobError
from gateway.journal import Journal

# the journal side, re-exported: callers import Deployment, deployments, chat replies from here
from gateway.journal.deployments import ChatReply, Deployment, get_deployment
from gateway.journal.deployments import deployments as deployments

__all__ = ["TARGETS", "ChatReply", "Deployment", "chat", "deploy", "deployments", "undeploy"]


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
    journal: Journal | None = None,
) -> Deployment:
    """Deploy `source` (a job id, artifact id, `Artifact`, GGUF file or export folder) to `to`."""
    from gateway.facade.sources import for_deploy

    journal = journal or Journal()
    deployer = get_deployer(to)
    options = DeployOptions(system, template, stops, host, progress)
    extra = sorted(options.given() - deployer.options)
    if extra:
        flags = ", ".join("--" + ("stop" if k == "stops" else k) for k in extra)
        takes = [t for t in TARGETS if set(extra) <= get_deployer(t).options]
        raise DeployError(
            f"{flags} do(es) not apply to --to {to}",
            fix=f"they apply to --to {' or '.join(takes)}" if takes else None,
        )
    src = for_deploy(source, deployer.wants, journal, progress=progress)
    why = deployer.accepts(src)
    if why:
        raise DeployError(why)
    return _record(journal, to, deployer.prepare(src, name, options), deployer.deploy)


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
    return get_deployment(dep, journal)


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
