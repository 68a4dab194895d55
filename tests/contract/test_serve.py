"""`tunegate serve` driven by the official `openai` SDK (sync, async, streaming) in front of the
provider fakes: the same answers as the upstream gives directly, 404 for an unknown model,
fallback past a dead deployment, keys and budgets, and one usage record per request."""

from __future__ import annotations

import asyncio
import json

import pytest

pytest.importorskip("openai")
pytest.importorskip("starlette")
pytest.importorskip("uvicorn")

import openai

from gateway.errors import ServeError
from gateway.facade.deploy import deploy
from gateway.journal import Journal
from gateway.journal.serving import ServeStore
from gateway.serve import running
from tests.fakes._server import SECRET


@pytest.fixture
def openai_dep(monkeypatch, tmp_path):
    """A finished OpenAI job on the fake, deployed: the model `ft:gpt-4o-mini...`."""
    from gateway.facade.launch import launch
    from gateway.spec import JobSpec
    from tests.fakes.openai_api import OpenAIFake
    from tests.support.job_files import job_file

    with OpenAIFake() as fake:
        fake.env(monkeypatch)
        job = launch(JobSpec.from_yaml(job_file(tmp_path, "gpt-4o-mini")), backend="openai")
        assert job.wait(interval=0).state == "succeeded"
        dep = deploy(job.id, "openai", name="brand-voice")
        yield fake, dep


def _usage() -> list:
    with ServeStore() as store:
        return store.usage()


def _settled(n: int, timeout: float = 5.0) -> list:
    """The usage rows once the writer thread has committed `n` of them."""
    import time

    deadline = time.monotonic() + timeout
    while True:
        rows = _usage()
        if len(rows) >= n or time.monotonic() > deadline:
            return rows
        time.sleep(0.05)


def test_sync_stream_and_models_match_the_upstream(openai_dep):
    fake, dep = openai_dep
    direct = openai.OpenAI(base_url=fake.base_url, api_key=SECRET)
    question = [{"role": "user", "content": "what is on shelf four today"}]
    want = direct.chat.completions.create(model=dep.endpoint, messages=question)
    with running() as url:
        client = openai.OpenAI(base_url=url, api_key="unused-without-keys")
        assert [m.id for m in client.models.list()] == ["brand-voice"]
        got = client.chat.completions.create(model="brand-voice", messages=question)
        assert got.choices[0].message.content == want.choices[0].message.content
        assert got.usage.prompt_tokens == want.usage.prompt_tokens
        raw = client.chat.completions.with_raw_response.create(model=dep.id, messages=question)
        assert raw.headers["x-tunegate-deployment"] == dep.id  # a deployment id works too
        stream = client.chat.completions.create(model="brand-voice", messages=question, stream=True)
        chunks = list(stream)
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        assert text == want.choices[0].message.content
        assert all(c.choices for c in chunks)  # the usage chunk we asked for is not passed on
        with_usage = list(
            client.chat.completions.create(
                model="brand-voice",
                messages=question,
                stream=True,
                stream_options={"include_usage": True},
            )
        )
        assert with_usage[-1].usage.completion_tokens == want.usage.completion_tokens
    rows = _settled(4)
    assert len(rows) == 4 and {r.deployment_id for r in rows} == {dep.id}
    assert all(r.status == 200 and not r.estimated for r in rows)
    assert [r.stream for r in rows] == [False, False, True, True]
    first = rows[0]
    assert (first.prompt_tokens, first.completion_tokens) == (
        want.usage.prompt_tokens,
        want.usage.completion_tokens,
    )
    # gpt-4o-mini fine-tuned serving: $0.30/1M input, $1.20/1M output (prices.yaml)
    expected = (first.prompt_tokens * 0.30 + first.completion_tokens * 1.20) / 1e6
    assert first.cost_usd == pytest.approx(expected)
    assert all(r.prompt_json is None for r in rows)  # no prompt text unless asked


def test_async_clients_and_unknown_model(openai_dep):
    _, dep = openai_dep

    async def ask(client: openai.AsyncOpenAI, i: int) -> str:
        res = await client.chat.completions.create(
            model="brand-voice", messages=[{"role": "user", "content": f"question {i}"}]
        )
        return res.choices[0].message.content or ""

    async def main(url: str) -> list[str]:
        async with openai.AsyncOpenAI(base_url=url, api_key="x") as client:
            return await asyncio.gather(*(ask(client, i) for i in range(12)))

    with running() as url:
        answers = asyncio.run(main(url))
        assert answers == [f"[{dep.endpoint}] {f'question {i}'[::-1]}" for i in range(12)]
        client = openai.OpenAI(base_url=url, api_key="x", max_retries=0)
        with pytest.raises(openai.NotFoundError) as err:
            client.chat.completions.create(
                model="brand-vioce", messages=[{"role": "user", "content": "hi"}]
            )
        assert err.value.code == "model_not_found"
        assert "brand-voice" in err.value.message  # the known ones are listed
    rows = _settled(13)
    assert len(rows) == 13
    assert [r.status for r in rows].count(404) == 1
    assert next(r for r in rows if r.status == 404).deployment_id is None


def test_a_dead_deployment_falls_back_and_is_reported(openai_dep, capfd):
    import socket

    _, dep = openai_dep
    with socket.socket() as s:  # a port nothing listens on: Ollama is "down"
        s.bind(("127.0.0.1", 0))
        dead_port = s.getsockname()[1]
    with Journal() as journal:
        dead = journal.add_deployment(
            None,
            "ollama",
            "brand-voice-local",
            endpoint=f"http://127.0.0.1:{dead_port}",
            state="live",
        )
    with ServeStore() as store:
        store.set_alias("brand", ["brand-voice-local", "brand-voice"])
    with running() as url:
        client = openai.OpenAI(base_url=url, api_key="x")
        raw = client.chat.completions.with_raw_response.create(
            model="brand", messages=[{"role": "user", "content": "hello"}]
        )
        assert raw.headers["x-tunegate-deployment"] == dep.id
        assert raw.headers["x-tunegate-fallback-from"] == dead
        assert raw.parse().choices[0].message.content == f"[{dep.endpoint}] olleh"
        with pytest.raises(openai.APIStatusError) as err:  # the dead one alone: 502, with why
            openai.OpenAI(base_url=url, api_key="x", max_retries=0).chat.completions.create(
                model="brand-voice-local", messages=[{"role": "user", "content": "hello"}]
            )
        assert err.value.status_code == 502 and "cannot reach ollama" in err.value.message
    rows = _settled(2)
    assert rows[0].fallback_from == dead and rows[0].deployment_id == dep.id
    assert "brand-voice-local" in capfd.readouterr().err  # reported on the server's stderr


def test_a_gguf_that_is_gone_is_a_reason_not_an_engine_crash(openai_dep, tmp_path):
    """A llama.cpp deployment whose file was deleted starts no engine: its alias falls back, and
    alone it is a 502 that names the file."""
    pytest.importorskip("llama_cpp")  # without it the reason is the missing extra instead
    _, dep = openai_dep
    with Journal() as journal:
        gone = journal.add_deployment(
            None, "llamacpp", "brand-voice-gguf", endpoint=str(tmp_path / "x.gguf"), state="live"
        )
    with ServeStore() as store:
        store.set_alias("brand", ["brand-voice-gguf", "brand-voice"])
    with running() as url:
        client = openai.OpenAI(base_url=url, api_key="x", max_retries=0)
        raw = client.chat.completions.with_raw_response.create(
            model="brand", messages=[{"role": "user", "content": "hello"}]
        )
        assert raw.headers["x-tunegate-deployment"] == dep.id
        assert raw.headers["x-tunegate-fallback-from"] == gone
        with pytest.raises(openai.APIStatusError) as err:
            client.chat.completions.create(
                model="brand-voice-gguf", messages=[{"role": "user", "content": "hello"}]
            )
        assert err.value.status_code == 502 and "x.gguf" in err.value.message
        import httpx

        assert httpx.get(url.removesuffix("/v1") + "/tunegate/health").json()["engines"] == []


def test_keys_budgets_and_binding(openai_dep):
    with pytest.raises(ServeError, match="without API keys"), running(host="0.0.0.0"):
        pass
    store = ServeStore()
    key, secret = store.create_key("app", monthly_budget_usd=1e-5)
    _, other = store.create_key("ops")
    rows = store._read("SELECT sha256, prefix FROM api_keys")
    store.close()
    assert secret not in json.dumps([dict(r) for r in rows])  # only the hash is stored
    question = [{"role": "user", "content": "one two three four five six"}]
    with running() as url:
        with pytest.raises(openai.AuthenticationError):
            openai.OpenAI(base_url=url, api_key="wrong").chat.completions.create(
                model="brand-voice", messages=question
            )
        client = openai.OpenAI(base_url=url, api_key=secret)
        spent = 0
        with pytest.raises(openai.RateLimitError) as err:
            for _ in range(50):  # each costs ~$3e-6: the budget is spent within a few
                client.chat.completions.create(model="brand-voice", messages=question)
                spent += 1
        assert err.value.code == "budget_exceeded" and 1 <= spent < 50
        # another key is unaffected
        openai.OpenAI(base_url=url, api_key=other).chat.completions.create(
            model="brand-voice", messages=question
        )
    rows = _settled(spent + 3)
    mine = [r for r in rows if r.key_id == key.id]
    assert len(mine) == spent + 1  # the refused request is metered once (no SDK retry)
    assert mine[-1].status == 429 and mine[-1].cost_usd is None
    assert sum(r.cost_usd or 0 for r in mine) >= 1e-5
    log = "".join(str(r.to_json()) for r in rows)
    assert secret not in log and SECRET not in log


def test_load_one_usage_record_per_request(openai_dep):
    """50 concurrent clients x 20 requests on loopback: every one answered, each metered once."""
    import httpx

    async def client_run(http: httpx.AsyncClient, url: str, c: int) -> list[int]:
        codes = []
        for i in range(20):
            res = await http.post(
                url + "/chat/completions",
                json={
                    "model": "brand-voice",
                    "messages": [{"role": "user", "content": f"{c} {i}"}],
                },
            )
            codes.append(res.status_code)
        return codes

    async def main(url: str) -> list[int]:
        async with httpx.AsyncClient(timeout=60, limits=httpx.Limits(max_connections=50)) as http:
            runs = await asyncio.gather(*(client_run(http, url, c) for c in range(50)))
        return [code for run in runs for code in run]

    with running() as url:
        codes = asyncio.run(main(url))
    assert codes == [200] * 1000
    rows = _settled(1000, timeout=20)
    assert len(rows) == 1000 and len({r.request_id for r in rows}) == 1000
    assert all(r.status == 200 and r.prompt_tokens == 2 for r in rows)
