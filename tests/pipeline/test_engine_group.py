"""Many fine-tunes, one base, one engine: two LoRA adapters of SmolLM2-135M deployed to
llama.cpp share one `llama-server` (built by `make test` from the llama.cpp sources of the
llama-cpp-python sdist) with the base, behind `tunegate serve`, driven by the official `openai`
SDK. Each answers exactly as it does from an engine that holds only it; a planted leak (the
base's requests carrying an adapter's scale) fails the isolation canary with the evidence."""

from __future__ import annotations

import json

import httpx
import pytest

pytest.importorskip("openai")
pytest.importorskip("starlette")
pytest.importorskip("llama_cpp")

import openai

from exporters.deploy import groups, llama_server
from exporters.deploy.canary import Probe, check
from gateway.facade.deploy import deploy, deployments, undeploy
from gateway.facade.doctor import canaries
from gateway.journal.serving import ServeStore
from gateway.serve import running
from tests.support.polling import until

pytestmark = pytest.mark.slow
PROMPT = [{"role": "user", "content": "Name a colour."}]


@pytest.fixture(scope="module")
def adapters(smollm2_hf, tmp_path_factory):
    """Two adapters with different non-zero weights on the same base (q and v projections)."""
    if llama_server.binary() is None:
        pytest.skip(f"llama-server is not installed: {llama_server.BUILD_FIX}")
    from tests.support.tiny_models import lora_adapter

    root = tmp_path_factory.mktemp("group-adapters")
    made = {}
    for name, seed in (("tune-a", 1), ("tune-b", 7)):
        made[name] = lora_adapter(
            smollm2_hf, root / name, seed=seed, r=8, lora_alpha=16, scale=0.2,
            target_modules=["q_proj", "v_proj"],
        )  # fmt: skip
    return made


def _answer(url: str, body: dict | None = None) -> str:
    payload = {"model": "m", "messages": PROMPT, "max_tokens": 12, "temperature": 0}
    res = httpx.post(url + "/chat/completions", json={**payload, **(body or {})}, timeout=120)
    res.raise_for_status()
    return res.json()["choices"][0]["message"]["content"]


def _solo(group: groups.Group, lora: str | None, log) -> str:
    """The answer from an engine that holds only this member."""
    loras = [lora] if lora else []
    with llama_server.running(llama_server.command(group.engine_model, loras), log) as url:
        return _answer(url, llama_server.scales(loras, lora))


def _job(name: str, adapter, base) -> str:
    """A finished local job whose artifact is `adapter` (as `tunegate train` leaves one)."""
    from gateway.journal import Journal

    with Journal() as journal:
        rec = journal.record_intent(
            "local", "sft", str(base), {"base_model": str(base), "name": name, "method": "lora"}
        )
        journal.update(rec.id, state="succeeded")
        journal.add_artifact(rec.id, "adapter", str(adapter))
    return rec.id


def _cli(*args: str) -> dict:
    from click.testing import CliRunner

    from cli.main import main

    res = CliRunner().invoke(main, [*args, "--json"])
    assert res.exit_code == 0, res.output
    return json.loads(res.output)


def test_two_fine_tunes_share_one_engine_and_answer_as_alone(
    adapters, smollm2_hf, converter_cache, monkeypatch, tmp_path
):
    monkeypatch.setenv("TUNEGATE_CACHE_DIR", str(converter_cache))
    job_a = _job("tune-a", adapters["tune-a"], smollm2_hf)
    job_b = _job("tune-b", adapters["tune-b"], smollm2_hf)
    _cli("deploy", job_a, "--to", "llamacpp", "--name", "tune-a")
    _cli("deploy", job_b, "--to", "llamacpp", "--name", "tune-b")
    a, b = (next(d for d in deployments() if d.name == n) for n in ("tune-a", "tune-b"))
    key = a.meta["group"]
    assert b.meta["group"] == key and a.meta["lora"] != b.meta["lora"]
    assert "passed" in a.meta["canary"] and "base, tune-a, tune-b" in b.meta["canary"]
    members = [d for d in deployments() if d.meta.get("group") == key]
    base = next(d for d in members if d.meta["member"] == groups.BASE)
    assert sorted(d.name for d in members) == ["smollm2-135m-instruct", "tune-a", "tune-b"]
    group = groups.load(groups.engines_home() / key)
    assert group is not None and group.engine_model.name == "SmolLM2-135M-Instruct-q8_0.gguf"
    # the plan prices the fleet the job shares with its group
    planned = _cli("plan", job_a, "--serve", "20M/day")
    assert planned["sharing"]["adapters"] == 2 and planned["sharing"]["shared"] is not None
    assert (
        planned["sharing"]["volume_source"]
        == "0 of 1 sharing fine-tunes measured by tunegate serve"
    )
    # on demand, as `tunegate doctor --canary` runs it
    checks = canaries()
    assert [(c.name, c.ok) for c in checks] == [(key, True)], checks
    assert "over base, tune-a, tune-b" in checks[0].detail

    with running() as url:
        client = openai.OpenAI(base_url=url, api_key="x", max_retries=0)
        served = {}
        for dep in (base, a, b):
            got = client.chat.completions.create(
                model=dep.name, messages=PROMPT, max_tokens=12, temperature=0
            )
            served[dep.name] = got.choices[0].message.content
            assert got.usage.prompt_tokens > 0 and got.usage.completion_tokens > 0
        health = httpx.get(url.removesuffix("/v1") + "/tunegate/health", timeout=10).json()
        engines = health["engines"]
        assert [e["deployment"] for e in engines] == [key]  # one process for all three
        assert "passed" in engines[0]["canary"]
        page = httpx.get(url.removesuffix("/v1") + "/ui/deployments", timeout=30).text
        assert f"shared: {key} (base)" in page and "over base, tune-a, tune-b" in page
        rows = until(lambda: (r := ServeStore().usage()) and len(r) >= 3 and r, timeout=10)
        assert {r.deployment_id for r in rows} == {base.id, a.id, b.id}

        assert served["tune-a"] != served[base.name]  # so "as alone" says something
        log = tmp_path / "solo.log"
        assert served[base.name] == _solo(group, None, log)
        assert served["tune-a"] == _solo(group, a.meta["lora"], log)
        assert served["tune-b"] == _solo(group, b.meta["lora"], log)

        # tune-b leaves: once the registry reloads (every 5 s), the engine is restarted for
        # base + tune-a, canary and all, and tune-a answers as before
        undeploy(b.id)
        pid = engines[0]["pid"]

        def restarted() -> dict | None:
            again = client.chat.completions.create(
                model="tune-a", messages=PROMPT, max_tokens=12, temperature=0
            )
            assert again.choices[0].message.content == served["tune-a"]
            health = httpx.get(url.removesuffix("/v1") + "/tunegate/health", timeout=10).json()
            return health["engines"][0] if health["engines"][0]["pid"] != pid else None

        engine = until(restarted, timeout=60, every=1.0)
        assert engine is not None and "over base, tune-a (" in engine["canary"]


def test_a_planted_leak_fails_the_canary_with_the_evidence(adapters, converter_cache, monkeypatch):
    monkeypatch.setenv("TUNEGATE_CACHE_DIR", str(converter_cache))
    a = deploy(str(adapters["tune-a"]), "llamacpp", name="tune-a")
    deploy(str(adapters["tune-b"]), "llamacpp", name="tune-b")
    group = groups.load(groups.engines_home() / a.meta["group"])
    assert group is not None
    loras = [d.meta["lora"] for d in reversed(deployments()) if d.meta.get("lora")]
    probes = [
        Probe("base", llama_server.scales(loras, loras[0])),  # tune-a's scale left at 1
        Probe("tune-a", llama_server.scales(loras, loras[0])),
        Probe("tune-b", llama_server.scales(loras, loras[1])),
    ]
    argv = llama_server.command(group.engine_model, loras)
    with llama_server.running(argv, group.folder / "leak.log") as url:
        report = check(url, {}, probes, group.prints())
        honest = check(url, {}, [Probe("base", llama_server.scales(loras, None))], group.prints())
    assert not report.passed
    assert report.failures == [report.failures[0]]
    assert report.failures[0].startswith("base (alone, prompt 1) answered as tune-a does")
    assert honest.passed, honest.failures
