"""Deploy targets, one module each, all behind `exporters.deploy.base.Deployer`.

`DEPLOYERS` is the one list of targets: `tunegate deploy --to` choices, the facade's dispatch
and the docs table are read from it. Modules load lazily (no SDK at import time).
"""

from __future__ import annotations

from importlib import import_module

from exporters.deploy.base import Deployer

# target -> "module:Class"
DEPLOYERS: dict[str, str] = {
    "ollama": "exporters.deploy.ollama:Ollama",
    "llamacpp": "exporters.deploy.llamacpp:LlamaCpp",
    "mlx": "exporters.deploy.mlx:MlxLm",
    "openai": "exporters.deploy.openai:OpenAIModel",
    "together": "exporters.deploy.together:TogetherServing",
    "fireworks": "exporters.deploy.fireworks:FireworksServing",
    "bedrock": "exporters.deploy.bedrock:BedrockImport",
}
TARGETS: tuple[str, ...] = tuple(DEPLOYERS)


def get_deployer(target: str) -> Deployer:
    """The deployer for `target`; an unknown one is a `DeployError` listing the known."""
    if target not in DEPLOYERS:
        from gateway.errors import DeployError

        raise DeployError(f"unknown deploy target {target!r}", fix=f"one of: {', '.join(TARGETS)}")
    module, _, cls = DEPLOYERS[target].partition(":")
    return getattr(import_module(module), cls)()
