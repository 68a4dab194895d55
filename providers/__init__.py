"""Backends, one module each, all behind `providers.base.Planner` / `Provider`.

Modules are imported lazily and import no SDK or ML framework at top level, so planning stays
fast and works with only the base install.
"""

from __future__ import annotations

from importlib import import_module

from providers.base import Planner

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


def get_planner(name: str) -> Planner:
    module, _, cls = REGISTRY[name].partition(":")
    return getattr(import_module(module), cls)()


def all_planners() -> list[Planner]:
    return [get_planner(name) for name in REGISTRY]
