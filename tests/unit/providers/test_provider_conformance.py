"""Every registered training backend implements `providers.base.Provider` as declared:
the methods exist and take the protocol's parameters, so the gateway can call any of them."""

from __future__ import annotations

import inspect

import pytest

import exporters.deploy
import providers
from gateway.errors import JobError
from providers.base import Provider, Quoting, Resumable

LIFECYCLE = ("check_ready", "upload", "create", "find", "poll", "cancel", "fetch")


def _params(fn) -> list[tuple[str, object]]:
    return [(p.name, p.kind) for p in inspect.signature(fn).parameters.values()]


@pytest.mark.parametrize("name", providers.NAMES)
def test_every_backend_conforms(name):
    backend = providers.get_provider(name)
    assert isinstance(backend, Provider)
    assert backend.name == name and backend.kind in ("local", "hosted")
    assert backend.serves_with in exporters.deploy.DEPLOYERS  # what serves what it trains
    for method in LIFECYCLE:
        declared = getattr(Provider, method)
        assert _params(getattr(type(backend), method)) == _params(declared), method
    for optional in (Quoting, Resumable):
        if isinstance(backend, optional):
            (method,) = [m for m in ("quote", "resume") if hasattr(optional, m)]
            assert _params(getattr(type(backend), method)) == _params(getattr(optional, method))


def test_optional_abilities_are_seen():
    assert isinstance(providers.get_provider("together"), Quoting)
    assert not isinstance(providers.get_provider("openai"), Quoting)
    for name in ("local", "unsloth", "mlx"):
        assert isinstance(providers.get_provider(name), Resumable)
    assert not isinstance(providers.get_provider("bedrock"), Resumable)


def test_an_unknown_backend_names_the_known_ones():
    with pytest.raises(JobError, match="unknown backend 'nope'") as err:
        providers.get_provider("nope")
    assert "together" in err.value.fix
