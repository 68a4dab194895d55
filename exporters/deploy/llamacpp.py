"""llama.cpp: a local GGUF registered as a deployment and loaded in-process on each chat.

Nothing runs in the background and nothing is billed; the GGUF's own chat template formats
the conversation (llama-cpp-python reads it from the file's metadata).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from exporters.deploy.base import DeployOptions, DeploySource, Messages, Prepared, with_system
from gateway.deploy_journal import ChatReply, Deployment

CONTEXT = 2048


class LlamaCpp:
    target = "llamacpp"
    wants = "gguf"
    options = frozenset({"system"})

    def accepts(self, src: DeploySource) -> str | None:
        return None

    def prepare(self, src: DeploySource, name: str | None, options: DeployOptions) -> Prepared:
        gguf = Path(str(src.path))
        return Prepared(
            name or gguf.stem.lower().replace("_", "-"),
            {"system": options.system},
            endpoint=str(gguf),
            artifact_id=src.artifact_id,
            remote=False,
        )

    def deploy(self, prepared: Prepared) -> dict[str, Any]:
        return {}

    def undeploy(self, dep: Deployment) -> None:
        return None  # the file stays where the export wrote it

    def chat(self, dep: Deployment, messages: Messages, max_tokens: int) -> ChatReply:
        from llama_cpp import Llama

        llm = Llama(model_path=str(dep.endpoint), n_ctx=CONTEXT, verbose=False)
        try:
            res = llm.create_chat_completion(
                with_system(dep, messages), max_tokens=max_tokens, temperature=0.0
            )
        finally:
            llm.close()
        choice = res["choices"][0]
        return ChatReply(
            choice["message"]["content"] or "", choice["finish_reason"], dep.id, dict(res)
        )
