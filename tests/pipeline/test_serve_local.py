"""`tunegate serve` in front of real local engines, driven by the official `openai` SDK: a
fine-tuned SmolLM2 GGUF in llama-cpp-python's server (started, supervised and restarted by the
gateway) and the same GGUF behind the Ollama fake's OpenAI-compatible `/v1` (llama.cpp too).
Answers equal the engine's when called directly; a killed engine falls back and comes back."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from pathlib import Path

import pytest

pytest.importorskip("openai")
pytest.importorskip("starlette")
pytest.importorskip("uvicorn")
pytest.importorskip("llama_cpp.server", reason="llama-cpp-python[server] is not installed")

import httpx
import openai

from gateway.facade.deploy import deploy
from gateway.journal.serving import ServeStore
from gateway.serve import running
from gateway.serve.usage import usage
from tests.support.polling import until

pytestmark = pytest.mark.slow

QUESTION = [{"role": "user", "content": "What is 2 + 2?"}]
ASK = {"messages": QUESTION, "max_tokens": 24, "temperature": 0}


@pytest.fixture
def ollama_fake(tmp_path):
    pytest.importorskip("ollama")
    from tests.fakes.ollama_api import OllamaFake

    with OllamaFake(tmp_path / "ollama-blobs") as fake:
        yield fake


def _health(url: str) -> dict:
    return httpx.get(url.removesuffix("/v1") + "/tunegate/health", timeout=10).json()


def _engine(url: str, dep_id: str) -> dict:
    return next(e for e in _health(url)["engines"] if e["deployment"] == dep_id)


def _settled(n: int, timeout: float = 5.0) -> list:
    deadline = time.monotonic() + timeout
    while True:
        with ServeStore() as store:
            rows = store.usage()
        if len(rows) >= n or time.monotonic() > deadline:
            return rows
        time.sleep(0.05)


def test_llamacpp_engine_and_ollama_behind_one_alias(smollm2_gguf, ollama_fake):
    gguf = smollm2_gguf.files[0]
    local = deploy(str(gguf), "llamacpp", name="lumen-local")
    hosted = deploy(str(gguf), "ollama", name="lumen-ollama", host=ollama_fake.host)
    with ServeStore() as store:
        store.set_alias("lumen", ["lumen-local", "lumen-ollama"])

    with running() as url:
        client = openai.OpenAI(base_url=url, api_key="x", max_retries=0)
        assert {m.id for m in client.models.list()} == {"lumen", "lumen-local", "lumen-ollama"}
        raw = client.chat.completions.with_raw_response.create(model="lumen", **ASK)
        assert raw.headers["x-tunegate-deployment"] == local.id  # the first of the alias
        got = raw.parse()
        engine = _engine(url, local.id)
        assert engine["url"] and engine["starts"] == 1

        # the engine called directly gives the same answer and the same usage
        direct = openai.OpenAI(base_url=engine["url"], api_key="x")
        want = direct.chat.completions.create(model="lumen-local", **ASK)
        assert got.choices[0].message.content == want.choices[0].message.content
        assert got.usage.prompt_tokens == want.usage.prompt_tokens > 0
        assert got.choices[0].finish_reason == want.choices[0].finish_reason
        text = want.choices[0].message.content
        assert text and "<|im_end|>" not in text

        # streaming, sync and async: the same text, chunk by chunk
        chunks = list(client.chat.completions.create(model="lumen", stream=True, **ASK))
        assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == text

        async def ask_async() -> list[str]:
            async with openai.AsyncOpenAI(base_url=url, api_key="x") as aclient:
                replies = await asyncio.gather(
                    *(aclient.chat.completions.create(model="lumen", **ASK) for _ in range(3))
                )
            return [r.choices[0].message.content or "" for r in replies]

        assert asyncio.run(ask_async()) == [text] * 3

        # Ollama's /v1 answers from the same GGUF through its own template: the same text
        via_ollama = client.chat.completions.create(model="lumen-ollama", **ASK)
        assert via_ollama.choices[0].message.content == text

        # kill the engine: the alias falls back to Ollama at once, and the engine comes back
        os.kill(engine["pid"], signal.SIGKILL)
        assert until(lambda: _pid_gone(engine["pid"]), timeout=10)
        raw = client.chat.completions.with_raw_response.create(model="lumen", **ASK)
        assert raw.headers["x-tunegate-deployment"] == hosted.id
        assert raw.headers["x-tunegate-fallback-from"] == local.id
        assert raw.parse().choices[0].message.content == text
        back = until(lambda: (e := _engine(url, local.id))["url"] and e)
        assert back, "the engine did not come back"
        assert back["starts"] == 2 and back["last_exit"] == -signal.SIGKILL
        again = client.chat.completions.with_raw_response.create(model="lumen", **ASK)
        assert again.headers["x-tunegate-deployment"] == local.id
        assert again.parse().choices[0].message.content == text

    rows = _settled(8)
    assert len(rows) == 8  # the direct call is not metered; every gateway request is, once
    by_dep = [r.deployment_id for r in rows]
    assert by_dep.count(local.id) == 6 and by_dep.count(hosted.id) == 2
    fell = [r for r in rows if r.fallback_from]
    assert len(fell) == 1 and fell[0].fallback_from == local.id
    assert all(r.status == 200 and r.completion_tokens > 0 for r in rows)
    # llama-cpp-python's server ignores `stream_options.include_usage`: its stream is counted
    # from the deltas (one token each), the prompt estimated; Ollama's /v1 reports usage
    (streamed,) = [r for r in rows if r.stream]
    assert streamed.estimated and streamed.completion_tokens == rows[0].completion_tokens
    assert [r for r in rows if r.estimated] == [streamed]
    # self-hosted routes cost this machine's electricity by the hour, never $0 per token
    assert all(r.cost_usd is None for r in rows)
    report = {row.id: row for row in usage().rows}
    assert report[local.id].requests == 6 and report[local.id].fallbacks == 0
    assert report[hosted.id].fallbacks == 1
    assert report[local.id].hourly_usd > 0 and report[local.id].metered_usd == 0


def _pid_gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    # a zombie until the gateway reaps it: that counts as gone
    with open(f"/proc/{pid}/stat") as stat:
        return stat.read().split(")")[-1].split()[0] == "Z"


def test_unknown_model_is_404_not_the_engines_default(smollm2_gguf):
    """llama-cpp-python answers any model name with its default model; the gateway does not."""
    deploy(str(smollm2_gguf.files[0]), "llamacpp", name="lumen-local")
    with running() as url:
        client = openai.OpenAI(base_url=url, api_key="x", max_retries=0)
        with pytest.raises(openai.NotFoundError) as err:
            client.chat.completions.create(model="lumen-locl", **ASK)
        assert err.value.code == "model_not_found" and "lumen-local" in err.value.message
        assert _health(url)["engines"] == []  # no engine was started for a wrong name


def test_mlx_engine_behind_the_gateway(tiny_sp, tmp_path):
    """An MLX export deployed `--to mlx`: mlx_lm.server started by the gateway answers what
    mlx-lm answers in-process, and reports stream usage, so nothing is estimated."""
    pytest.importorskip("mlx_lm")
    pytest.importorskip("peft")
    from gateway.facade.deploy import chat
    from gateway.facade.export import export
    from tests.support.tiny_models import lora_adapter

    adapter = lora_adapter(tiny_sp, tmp_path / "lora", r=8, lora_alpha=16)
    folder = export(adapter, "mlx", quant="float32", out=tmp_path / "mlx").path
    dep = deploy(str(folder), "mlx", name="tiny-mlx")
    assert dep.target == "mlx" and dep.endpoint == str(folder)
    question = [{"role": "user", "content": "What does the for statement do?"}]
    local = chat(dep.id, question, max_tokens=8)
    assert local.text
    ask = {"messages": question, "max_tokens": 8, "temperature": 0}
    with running() as url:
        client = openai.OpenAI(base_url=url, api_key="x", max_retries=0)
        got = client.chat.completions.create(model="tiny-mlx", **ask)
        assert got.choices[0].message.content == local.text
        engine = _engine(url, dep.id)
        direct = openai.OpenAI(base_url=engine["url"], api_key="x").chat.completions.create(
            model="default_model", **ask
        )
        assert direct.choices[0].message.content == local.text
        assert got.usage.completion_tokens == direct.usage.completion_tokens
        chunks = list(client.chat.completions.create(model="tiny-mlx", stream=True, **ask))
        assert all(c.choices for c in chunks)  # the usage chunk the gateway asked for is dropped
        assert "".join(c.choices[0].delta.content or "" for c in chunks) == local.text
    rows = _settled(2)
    assert [r.deployment_id for r in rows] == [dep.id, dep.id]
    assert not any(r.estimated for r in rows) and rows[1].stream
    assert rows[1].completion_tokens == rows[0].completion_tokens
    # an adapter folder is exported to MLX (q4, verified) before it is deployed
    q4 = deploy(str(adapter), "mlx", name="tiny-q4")
    config = json.loads((Path(q4.endpoint) / "config.json").read_text())
    assert config["quantization"]["bits"] == 4 and q4.artifact_id is None


def test_responses_api_over_a_llama_cpp_engine(smollm2_gguf):
    """`client.responses.create`, plain and streamed, through the door to llama-cpp-python's
    server (which speaks only chat completions): the same greedy text as a chat request."""
    deploy(str(smollm2_gguf.files[0]), "llamacpp", name="lumen-local")
    with running() as url:
        client = openai.OpenAI(base_url=url, api_key="x", max_retries=0)
        chat = client.chat.completions.create(model="lumen-local", **ASK)
        text = chat.choices[0].message.content
        got = client.responses.create(
            model="lumen-local", input="What is 2 + 2?", max_output_tokens=24, temperature=0
        )
        assert got.output_text == text and got.usage.input_tokens == chat.usage.prompt_tokens
        events = list(
            client.responses.create(
                model="lumen-local",
                input="What is 2 + 2?",
                max_output_tokens=24,
                temperature=0,
                stream=True,
            )
        )
        deltas = "".join(e.delta for e in events if e.type == "response.output_text.delta")
        assert deltas == text and events[-1].type in ("response.completed", "response.incomplete")
        follow = client.responses.create(
            model="lumen-local", input="And 3 + 3?", previous_response_id=got.id,
            max_output_tokens=8, temperature=0,
        )  # fmt: skip
        assert follow.output_text
    rows = _settled(4)
    assert [r.route for r in rows].count("responses") == 3
