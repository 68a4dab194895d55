"""Every deploy target implements `exporters.deploy.base.Deployer` as declared, and the facade
journals any target the same way: pending before the remote step, then live or failed."""

from __future__ import annotations

import dataclasses
import inspect
import typing

import pytest

import exporters.deploy as registry
from exporters.deploy.base import Deployer, DeployOptions, Prepared, Wants
from gateway.errors import DeployError
from gateway.facade.deploy import chat, deploy, deployments, undeploy
from gateway.journal import Journal
from gateway.journal.deployments import ChatReply

METHODS = ("accepts", "prepare", "deploy", "undeploy", "chat", "upstream", "price")
OPTION_FIELDS = {f.name for f in dataclasses.fields(DeployOptions)} - {"progress"}


def _params(fn) -> list[str]:
    return list(inspect.signature(fn).parameters)


@pytest.mark.parametrize("target", registry.TARGETS)
def test_every_target_conforms(target):
    deployer = registry.get_deployer(target)
    assert isinstance(deployer, Deployer) and deployer.target == target
    assert deployer.wants in typing.get_args(Wants)
    assert deployer.options <= OPTION_FIELDS
    assert deployer.hosts in ("self", "hosted")
    for method in METHODS:
        assert _params(getattr(type(deployer), method)) == _params(getattr(Deployer, method))


@pytest.mark.parametrize("target", registry.TARGETS)
def test_every_target_prices_its_deployments(target, catalog):
    """Each target answers what its deployments cost from the catalog (the usage report, the
    advice and the plan ask it): never an exception, and hosted targets are never free."""
    from gateway.cost.deployments import Price
    from gateway.journal.deployments import Deployment

    hosted = [m.id for m in catalog.models if target in m.hosted]  # a base it serves, if any
    base = (hosted or ["meta-llama/Llama-3.1-8B-Instruct"])[0]
    dep = Deployment("dep-1", target, "m", base, "live")
    price = registry.get_deployer(target).price(dep, base, catalog)
    assert isinstance(price, Price) and price.kind in ("per_token", "hourly", "unpriced")
    if registry.get_deployer(target).hosts == "hosted":
        assert price.kind != "unpriced", price.label
        assert price.input_per_1m > 0 or price.usd_per_hour > 0


def test_an_unknown_target_names_the_known_ones():
    with pytest.raises(DeployError, match="unknown deploy target 'nope'") as err:
        deploy("x", "nope")
    assert "ollama" in err.value.fix


class _Memory:
    """A target whose remote step is scripted: it records what the journal held when it ran."""

    target, wants, hosts, options = "memory", "job", "hosted", frozenset({"system"})
    fail = False
    seen_state: typing.ClassVar[list[str]] = []
    removed: typing.ClassVar[list[str]] = []

    def accepts(self, src):
        return None if src.path else "needs a folder"

    def prepare(self, src, name, options):
        return Prepared(name or src.path.name, {"folder": str(src.path), "system": options.system})

    def deploy(self, prepared):
        (dep,) = deployments()
        type(self).seen_state.append(dep.state)
        if type(self).fail:
            raise RuntimeError("the host refused")
        return {"endpoint": f"memory://{prepared.name}", "replicas": 1}

    def undeploy(self, dep):
        type(self).removed.append(dep.id)

    def chat(self, dep, messages, max_tokens):
        return ChatReply(messages[-1]["content"][::-1], "stop", dep.id)


@pytest.fixture
def memory_target(monkeypatch):
    monkeypatch.setitem(registry.DEPLOYERS, "memory", f"{__name__}:_Memory")
    monkeypatch.setattr(_Memory, "seen_state", [])
    monkeypatch.setattr(_Memory, "removed", [])
    monkeypatch.setattr(_Memory, "fail", False)
    return _Memory


def test_the_facade_journals_pending_then_live(memory_target, tmp_path):
    dep = deploy(str(tmp_path), "memory", name="voice", system="Be brief.")
    assert memory_target.seen_state == ["pending"]
    assert dep.state == "live" and dep.endpoint == "memory://voice"
    assert dep.meta == {"folder": str(tmp_path), "system": "Be brief.", "replicas": 1}
    assert chat(dep.id, "abc").text == "cba"
    assert undeploy(dep.id).state == "removed" and memory_target.removed == [dep.id]


def test_a_failed_remote_step_is_journaled_failed(memory_target, tmp_path):
    memory_target.fail = True
    with pytest.raises(RuntimeError, match="refused"):
        deploy(str(tmp_path), "memory")
    (dep,) = deployments(Journal(), all=True)
    assert dep.state == "failed"


def test_options_a_target_does_not_take_are_refused_before_anything(memory_target, tmp_path):
    with pytest.raises(DeployError, match="--stop do\\(es\\) not apply to --to memory") as err:
        deploy(str(tmp_path), "memory", stops=["</s>"])
    assert "ollama" in err.value.fix and not deployments(all=True)


def test_a_refused_source_is_a_deploy_error(memory_target, tmp_path):
    rec = Journal().record_intent("openai", "sft", "gpt-4o-mini", {}, offer={}, estimate={})
    with pytest.raises(DeployError, match="needs a folder"):
        deploy(rec.id, "memory")
    assert not deployments(all=True)


def test_deploy_and_export_take_the_same_sources(tmp_path):
    """An `Artifact` (what `job.artifact()` returns) is a source for both, as DESIGN shows."""
    import gateway as tg
    from gateway.facade.sources import for_export

    gguf = tmp_path / "voice.gguf"
    gguf.write_bytes(b"GGUF")
    art = tg.Artifact("art-1", "", "gguf", str(gguf))
    dep = tg.deploy(art, "llamacpp")
    assert dep.state == "live" and dep.endpoint == str(gguf.resolve()) and dep.name == "voice"
    assert for_export(art) is art
    assert for_export(str(tmp_path)) == str(tmp_path)
    with pytest.raises(tg.TunegateError, match="no job"):
        for_export("tg-nosuchjob")


def test_a_rented_fleet_needs_a_job_with_an_adapter(monkeypatch):
    """--to rented serves LoRA adapters: a job with none is refused before anything is
    prepared, saying why."""
    from exporters.deploy.base import DeploySource
    from gateway.journal import Journal

    monkeypatch.setenv("TUNEGATE_SKYPILOT_BUCKET", "s3://fleet-bucket/jobs")
    with Journal() as journal:
        rec = journal.record_intent("local", "local", "meta-llama/Llama-3.1-8B-Instruct", {})
    why = registry.get_deployer("rented").accepts(DeploySource(rec.id, job=rec))
    assert why and "no LoRA adapter" in why
    assert "give a job id" in registry.get_deployer("rented").accepts(DeploySource("x.gguf"))
