"""MLX: a local MLX model folder (an MLX export) registered as a deployment. `tunegate chat`
runs it in-process with mlx-lm; `tunegate serve` runs it in mlx-lm's OpenAI-compatible server
(`mlx_lm.server`), which it starts and supervises like a llama.cpp engine. Nothing is billed;
the folder's own chat template formats the conversation.

mlx_lm.server treats a request's `model` as a path or Hugging Face repo to load, and
`default_model` as the one given on its command line, so the gateway always sends
`default_model`: a client's model name can never make the engine fetch another model.
"""

from __future__ import annotations

import sys
from pathlib import Path

from exporters.deploy.base import LocalRegistration, Messages, Upstream, with_system
from gateway.journal.deployments import ChatReply, Deployment

ENGINE_MODEL = "default_model"  # mlx_lm.server's name for the model given by --model


class MlxLm(LocalRegistration):
    target = "mlx"
    engine = "mlx"
    wants = "mlx"

    def chat(self, dep: Deployment, messages: Messages, max_tokens: int) -> ChatReply:
        from gateway.catalog.extras import require

        require("mlx_lm", what="chatting with an MLX deployment")
        import mlx_lm
        from mlx_lm.sample_utils import make_sampler

        model, tokenizer = mlx_lm.load(str(dep.endpoint))
        prompt = tokenizer.apply_chat_template(
            with_system(dep, messages), add_generation_prompt=True
        )
        text, reason, counts = "", "length", (len(prompt), 0)
        for step in mlx_lm.stream_generate(
            model, tokenizer, prompt, max_tokens=max_tokens, sampler=make_sampler(temp=0.0)
        ):
            text += step.text
            reason = step.finish_reason or reason
            counts = (step.prompt_tokens, step.generation_tokens)
        usage = {"prompt_tokens": counts[0], "completion_tokens": counts[1]}
        return ChatReply(text, reason, dep.id, {"usage": usage})

    def upstream(self, dep: Deployment) -> Upstream:
        from gateway.catalog.extras import require
        from gateway.errors import DeployError

        require("mlx_lm", what="serving an MLX deployment")
        folder = Path(str(dep.endpoint))
        if not (folder / "config.json").is_file():
            raise DeployError(
                f"the MLX folder of {dep.name} is gone: {folder}",
                fix=f"export it again and `tunegate deploy FOLDER --to mlx --name {dep.name}`",
            )
        command = (sys.executable, "-m", "mlx_lm.server", "--model", str(folder))
        command += ("--host", "127.0.0.1", "--port", "{port}", "--log-level", "WARNING")
        return Upstream("engine", ENGINE_MODEL, command=command)
