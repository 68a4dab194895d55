"""Deploy targets, one module each, all behind `exporters.deploy.base.Deployer`.

`DEPLOYERS` is the one list of targets: `tunegate deploy --to` choices, the facade's dispatch
and the docs table are read from it. Modules load lazily (no SDK at import time).
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

from exporters.deploy.base import Deployer, LocalRegistration

# target -> "module:Class"
DEPLOYERS: dict[str, str] = {
    "ollama": "exporters.deploy.ollama:Ollama",
    "llamacpp": "exporters.deploy.llamacpp:LlamaCpp",
    "vllm": "exporters.deploy.vllm:Vllm",
    "mlx": "exporters.deploy.mlx:MlxLm",
    "openai": "exporters.deploy.openai:OpenAIModel",
    "together": "exporters.deploy.together:TogetherServing",
    "fireworks": "exporters.deploy.fireworks:FireworksServing",
    "bedrock": "exporters.deploy.bedrock:BedrockImport",
    "rented": "exporters.deploy.rented:RentedFleet",
}
TARGETS: tuple[str, ...] = tuple(DEPLOYERS)


def price_of(dep: Any, journal: Any, catalog: Any = None) -> Any:
    """What serving `dep` costs, asked of its own target (`Deployer.price`); never raises: a
    target that is gone or cannot price is `unpriced` with the reason."""
    from gateway.catalog import load_catalog
    from gateway.cost.deployments import Price, base_of
    from gateway.errors import TunegateError

    catalog = catalog or load_catalog()
    try:
        deployer = get_deployer(dep.target)
        return deployer.price(dep, base_of(dep, journal) or _exported_base(dep), catalog)
    except (TunegateError, KeyError, ValueError, TypeError) as exc:
        return Price("unpriced", f"no serving price for target {dep.target}: {exc}")


def _exported_base(dep: Any) -> str | None:
    """The base an exported file or folder on this machine derives from (its export.json)."""
    from pathlib import Path

    from exporters.record import read

    endpoint = Path(str(dep.endpoint or ""))
    record = read(endpoint) if dep.endpoint and endpoint.exists() else None
    return record.base if record else None


def engine_deployer(kind: str) -> LocalRegistration:
    """The self-hosted target that runs an export of `kind` (a file or folder on this machine)
    in an engine of its own: what evaluation starts to score a GGUF or an MLX export."""
    for target in DEPLOYERS:
        deployer = get_deployer(target)
        if isinstance(deployer, LocalRegistration) and deployer.wants == kind:
            return deployer
    from gateway.errors import DeployError

    raise DeployError(f"no deploy target runs a {kind} export in an engine")


def get_deployer(target: str) -> Deployer:
    """The deployer for `target`; an unknown one is a `DeployError` listing the known."""
    if target not in DEPLOYERS:
        from gateway.errors import DeployError

        raise DeployError(f"unknown deploy target {target!r}", fix=f"one of: {', '.join(TARGETS)}")
    module, _, cls = DEPLOYERS[target].partition(":")
    return getattr(import_module(module), cls)()
