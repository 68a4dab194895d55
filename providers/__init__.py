"""Training backends, one module each, all behind `providers.base.Provider`.

`REGISTRY` is the one list of backend names: the spec's `providers` allow-list, the CLI's
`--backend`/`--provider` choices and the docs tables are read from it.

Modules are imported lazily and import no SDK or ML framework at top level, so planning stays
fast and works with only the base install.
"""

from __future__ import annotations

from importlib import import_module
from typing import NamedTuple

from providers.base import Planner, Provider


class Backend(NamedTuple):
    path: str  # "module:Class", imported on first use
    kind: str  # "local" (this machine, or a rented GPU) | "hosted"


# the one list of training backends: name -> where it lives, what kind it is
REGISTRY: dict[str, Backend] = {
    "local": Backend("providers.local_hf:LocalHF", "local"),
    "unsloth": Backend("providers.unsloth:Unsloth", "local"),
    "mlx": Backend("providers.mlx:MLX", "local"),
    "together": Backend("providers.together:Together", "hosted"),
    "fireworks": Backend("providers.fireworks:Fireworks", "hosted"),
    "openai": Backend("providers.openai:OpenAI", "hosted"),
    "bedrock": Backend("providers.bedrock:Bedrock", "hosted"),
}
NAMES: tuple[str, ...] = tuple(REGISTRY)
HOSTED: tuple[str, ...] = tuple(n for n, b in REGISTRY.items() if b.kind == "hosted")


def get_provider(name: str) -> Provider:
    """The backend registered as `name`; an unknown name is a `JobError` listing the known."""
    if name not in REGISTRY:
        from gateway.errors import JobError

        raise JobError(f"unknown backend {name!r}", fix=f"one of: {', '.join(REGISTRY)}")
    module, _, cls = REGISTRY[name].path.partition(":")
    return getattr(import_module(module), cls)()


def serving_target(name: str) -> str:
    """The deploy target that serves what backend `name` trains (`Provider.serves_with`); a
    name that is no backend is taken as a deploy target already."""
    return get_provider(name).serves_with if name in REGISTRY else name


def data_format(name: str, base: str | None) -> str:
    """The `gateway.data.convert` format `tunegate data convert --to NAME` writes: a backend
    whose schema depends on the base model says so (`data_format_for`); else NAME itself."""
    if name in REGISTRY and base:
        pick = getattr(get_provider(name), "data_format_for", None)
        if pick is not None:
            return str(pick(base))
    return name


def all_planners() -> list[Planner]:
    return [get_provider(name) for name in REGISTRY]
