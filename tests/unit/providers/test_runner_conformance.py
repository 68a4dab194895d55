"""Every runner implements `providers.runners.base.Runner` as declared, the job's runner
follows from its journaled offer, and the launch picks only offers a runner can start."""

from __future__ import annotations

import inspect
from types import SimpleNamespace

import pytest

import providers.runners as registry
from gateway.errors import JobError
from providers.runners.base import Runner

METHODS = ("blocker", "check_ready", "preview", "base_path", "stage", "start", "find",
           "resume", "poll", "logs", "cancel", "collect", "checks")  # fmt: skip


def _params(fn) -> list[str]:
    return list(inspect.signature(fn).parameters)


@pytest.mark.parametrize("kind", registry.RUNNERS)
def test_every_runner_conforms(kind):
    runner = registry.get_runner(kind)
    assert isinstance(runner, Runner) and runner.kind == kind
    assert isinstance(runner.here, bool)
    for method in METHODS:
        assert _params(getattr(type(runner), method)) == _params(getattr(Runner, method)), method


def test_a_jobs_runner_is_its_offers():
    local = registry.runner_for(SimpleNamespace(offer={"kind": "local"}))
    rented = registry.runner_for(SimpleNamespace(offer={"kind": "rented"}))
    assert local.here and not rented.here
    assert registry.runner_for(SimpleNamespace(offer=None)).kind == "local"
    with pytest.raises(JobError, match="no runner starts 'moon'"):
        registry.get_runner("moon")


def test_a_rented_offer_is_blocked_until_skypilot_and_a_bucket_are_set_up(monkeypatch):
    """Without a bucket in the config a rented offer stays advice (the plan shows it, the
    launch passes it by) and says why; an offer no runner of ours starts is never blocked."""
    rented = SimpleNamespace(kind="rented", cloud="aws")
    assert "bucket" in (registry.blocker(rented) or "") or "SkyPilot" in registry.blocker(rented)
    assert registry.blocker(SimpleNamespace(kind="hosted", cloud=None)) is None
    assert registry.blocker(SimpleNamespace(kind="local", cloud=None)) is None


def test_this_machine_has_nothing_to_preview_or_check():
    runner = registry.get_runner("local")
    assert runner.preview({"resources": {"nodes": 2}}) is None
    assert runner.checks() == []
