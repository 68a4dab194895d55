"""OpenAI: it serves the fine-tuned model it trained, so deploying records that model's id;
nothing is created or removed, and chat goes to the model through the official SDK."""

from __future__ import annotations

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
)
from gateway.journal.deployments import ChatReply, Deployment


class OpenAIModel:
    target = "openai"
    wants = "job"
    hosts = "hosted"
    options: frozenset[str] = frozenset()

    def price(self, dep: Deployment, base: str | None, catalog: Any) -> Any:
        """A fine-tuned OpenAI model is billed per token at its base's fine-tuned rate."""
        from gateway.cost.deployments import Price, hosted_id, per_token_price

        serving = catalog.prices["serving"][self.target]
        model = hosted_id(catalog, base, self.target) or base
        row = serving["models"].get(model)
        if row is None:
            return Price("unpriced", f"no OpenAI serving price for {base}")
        return per_token_price(f"OpenAI ft:{model}", row["input"], row["output"], serving["source"])

    def accepts(self, src: DeploySource) -> str | None:
        if src.job is None:
            return "OpenAI serves only the models it trained: give the id of an OpenAI job"
        if src.job.provider != "openai":
            return f"job {src.job.id} ran on {src.job.provider}, not OpenAI"
        return None

    def prepare(self, src: DeploySource, name: str | None, options: DeployOptions) -> Prepared:
        art = src.fetch()  # type: ignore[misc]  # a job source always carries fetch
        return Prepared(
            name or art.uri,
            {"job": art.job_id},
            endpoint=art.uri,
            artifact_id=art.id,
            remote=False,
        )

    def deploy(self, prepared: Prepared) -> dict[str, Any]:
        return {}

    def undeploy(self, dep: Deployment) -> None:
        return None  # OpenAI keeps serving its models; removing one is `openai models delete`

    def chat(self, dep: Deployment, messages: Messages, max_tokens: int) -> ChatReply:
        from providers.openai import OpenAI

        client = OpenAI().client(max_retries=2)
        return completion("OpenAI", client, str(dep.endpoint), messages, max_tokens, dep.id)

    def upstream(self, dep: Deployment) -> Upstream:
        url = base_url("OPENAI_BASE_URL", "https://api.openai.com/v1")
        return Upstream("http", str(dep.endpoint), url, bearer("OPENAI_API_KEY", "OpenAI"))
