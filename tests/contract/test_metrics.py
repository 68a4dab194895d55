"""`/metrics` scraped and parsed with prometheus-client's own parser after real traffic through
the door (the official `openai` SDK against the OpenAI fake): counts that equal the journal's
usage records, latency histograms, tokens and dollars per deployment, key and arm, a fallback,
the usage writer's gauges, bounded labels (no prompt text, no raw key), and a key required once
keys exist."""

from __future__ import annotations

import socket

import pytest

pytest.importorskip("openai")
pytest.importorskip("prometheus_client")

import httpx
import openai
from prometheus_client.parser import text_string_to_metric_families

from gateway.journal import Journal
from gateway.journal.serving import ServeStore
from gateway.serve import running
from tests.contract.test_serve import _settled, openai_dep  # noqa: F401  (a fixture)

SECRET_PROMPT = "the launch code is swordfish"


def _scrape(url: str, **headers: str) -> dict[str, list]:
    res = httpx.get(url.removesuffix("/v1") + "/metrics", headers=headers)
    assert res.status_code == 200, res.text
    assert res.headers["content-type"].startswith("text/plain")
    assert SECRET_PROMPT not in res.text
    return {f.name: f.samples for f in text_string_to_metric_families(res.text)}


def _total(samples: list, name: str, **labels: str) -> float:
    return sum(
        s.value for s in samples
        if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())
    )  # fmt: skip


def test_metrics_agree_with_the_journal(openai_dep):  # noqa: F811
    _, dep = openai_dep
    with socket.socket() as s:  # a deployment whose upstream is down: the alias falls back
        s.bind(("127.0.0.1", 0))
        dead = s.getsockname()[1]
    with Journal() as journal:
        journal.add_deployment(
            None, "ollama", "down", endpoint=f"http://127.0.0.1:{dead}", state="live"
        )
    with ServeStore() as store:
        store.set_alias("voice", ["down", "brand-voice"])
    ask = [{"role": "user", "content": SECRET_PROMPT}]
    with running() as url:
        client = openai.OpenAI(base_url=url, api_key="x", max_retries=0)
        for _ in range(5):
            client.chat.completions.create(model="brand-voice", messages=ask)
        client.chat.completions.create(model="voice", messages=ask)  # a fallback
        with pytest.raises(openai.NotFoundError):
            client.chat.completions.create(model="no-such-model", messages=ask)
        rows = _settled(7)
        got = _scrape(url)
    requests = got["tunegate_requests"]
    assert _total(requests, "tunegate_requests_total") == len(rows) == 7
    assert _total(requests, "tunegate_requests_total", deployment=dep.id, status="2xx") == 6
    assert _total(requests, "tunegate_requests_total", model="-", status="4xx") == 1
    assert _total(requests, "tunegate_requests_total", model="voice") == 1
    latency = got["tunegate_request_latency_seconds"]
    assert _total(latency, "tunegate_request_latency_seconds_count", deployment=dep.id) == 6
    tokens = got["tunegate_tokens"]
    want = sum(r.prompt_tokens for r in rows if r.deployment_id == dep.id)
    assert _total(tokens, "tunegate_tokens_total", deployment=dep.id, kind="prompt") == want
    dollars = _total(got["tunegate_cost_usd"], "tunegate_cost_usd_total", deployment=dep.id)
    assert dollars == pytest.approx(sum(r.cost_usd or 0 for r in rows)) and dollars > 0
    (fell,) = [s for s in got["tunegate_fallbacks"] if s.name == "tunegate_fallbacks_total"]
    assert fell.labels["deployment"] == dep.id and fell.value == 1
    assert _total(got["tunegate_usage_written"], "tunegate_usage_written_total") >= 6
    assert "tunegate_usage_buffer_depth" in got and "tunegate_engine_up" in got


def test_metrics_need_a_key_once_keys_exist(openai_dep):  # noqa: F811
    with ServeStore() as store:
        key, secret = store.create_key("ops")
    with running() as url:
        assert httpx.get(url.removesuffix("/v1") + "/metrics").status_code == 401
        client = openai.OpenAI(base_url=url, api_key=secret, max_retries=0)
        client.chat.completions.create(
            model="brand-voice", messages=[{"role": "user", "content": "hi"}]
        )
        _settled(1)
        got = _scrape(url, authorization=f"Bearer {secret}")
    (row,) = [s for s in got["tunegate_requests"] if s.name == "tunegate_requests_total"]
    assert row.labels["key"] == key.id and secret not in str(got)
