"""llama.cpp: a local GGUF registered as a deployment. `tunegate chat` loads it in-process;
`tunegate serve` runs it in llama-cpp-python's OpenAI-compatible server, which it starts and
supervises. Nothing is billed; the GGUF's own chat template formats the conversation
(llama-cpp-python reads it from the file's metadata).
"""

from __future__ import annotations

import sys
from pathlib import Path

from exporters.deploy.base import LocalRegistration, Messages, Upstream, with_system
from gateway.journal.deployments import ChatReply, Deployment

CONTEXT = 2048


class LlamaCpp(LocalRegistration):
    target = "llamacpp"
    engine = "llama.cpp"
    wants = "gguf"

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

    def upstream(self, dep: Deployment) -> Upstream:
        from gateway.catalog.extras import require
        from gateway.errors import DeployError

        require("llama_cpp", "sse_starlette", what="serving a GGUF deployment")
        if not Path(str(dep.endpoint)).is_file():
            raise DeployError(
                f"the GGUF of {dep.name} is gone: {dep.endpoint}",
                fix=f"export it again and `tunegate deploy FILE --to llamacpp --name {dep.name}`",
            )
        command = (sys.executable, "-m", "llama_cpp.server", "--model", str(dep.endpoint))
        command += ("--host", "127.0.0.1", "--port", "{port}", "--model_alias", dep.name)
        command += ("--n_ctx", str(CONTEXT))
        return Upstream("engine", dep.name, command=command, logits_flag=("--logits_all", "true"))
