"""Training backends, one module each, all behind `providers.base.Provider`.

`REGISTRY` is the one list of backend names: the spec's `providers` allow-list, the CLI's
`--backend`/`--provider` choices and the docs tables are read from it.

Modules are imported lazily and import no SDK or ML framework at top level, so planning stays
fast and works with only the base install.
"""

from __future__ import annotations

from importlib import import_module

from providers.base import Planner, Provider

# provider name -> "module:Class"
REGISTRY: dict[str, str] = {
    "local": "providers.local_hf:LocalHF",
    "unsloth": "providers.unsloth:Unsloth",
    "mlx": "providers.mlx:MLX",
    "together": "providers.together:Together",
    "fireworks": "providers.fireworks:Fireworks",
    "openai": "providers.openai:OpenAI",
    "bedrock": "providers.bedrock:Bedrock",
}


NAMES: tuple[str, ...] = tuple(REGISTRY)


def get_provider(name: str) -> Provider:
    """The backend registered as `name`; an unknown name is a `JobError` listing the known."""
    if name not in REGISTRY:
        from gateway.errors import JobError

        raise JobError(f"unknown backend {name!r}", fix=f"one of: {', '.join(REGISTRY)}")
    module, _, cls = REGISTRY[name].partition(":")
    return getattr(import_module(module), cls)()


def get_planner(name: str) -> Planner:
    return get_provider(name)


def all_planners() -> list[Planner]:
    return [get_planner(name) for name in REGISTRY]
