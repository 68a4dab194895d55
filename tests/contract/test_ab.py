"""Live A/B through `tunegate serve`, driven by the official `openai` SDK: the candidate's
share of users within binomial tolerance, each user always on one arm, a share changed without
a restart, feedback scored per arm with an always-valid verdict, a candidate that fails falling
back to the incumbent (and counted against it), promotion rewriting the alias, and the
experiment surviving a gateway restart."""

from __future__ import annotations

import json
import time

import pytest

pytest.importorskip("openai")
pytest.importorskip("uvicorn")

import httpx
import openai

from gateway.facade import ab
from gateway.facade.deploy import deploy
from gateway.journal.serving import ServeStore
from gateway.serve import running
from gateway.serve.registry import REFRESH_S
from tests.contract.test_serve import _settled, openai_dep  # noqa: F401  (a fixture)
from tests.fakes._server import SECRET

QUESTION = [{"role": "user", "content": "what is on shelf four today"}]


def _ask(client: openai.OpenAI, user: str) -> tuple[str, str]:
    raw = client.chat.completions.with_raw_response.create(
        model="voice", messages=QUESTION, user=user, max_tokens=8
    )
    return raw.headers["x-tunegate-deployment"], raw.headers["x-request-id"]


def test_split_feedback_verdict_and_promotion(openai_dep):  # noqa: F811
    _, incumbent = openai_dep
    candidate = deploy(incumbent.meta["job"], "openai", name="brand-voice-v2")
    with ServeStore() as store:
        store.set_alias("voice", ["brand-voice"])
    exp = ab.start("voice", "brand-voice-v2", 0.3)
    answered: dict[str, str] = {}
    with running() as url:
        client = openai.OpenAI(base_url=url, api_key="x", max_retries=0)
        feedback = url.rsplit("/v1", 1)[0] + "/tunegate/feedback"
        for i in range(240):
            dep_id, rid = _ask(client, f"user-{i}")
            answered[f"user-{i}"] = dep_id
            # the application's verdict: the candidate's answers are liked, the incumbent's
            # half the time
            liked = dep_id == candidate.id or i % 2 == 0
            res = httpx.post(
                feedback, json={"request_id": rid, "thumbs": "up" if liked else "down"}
            )
            assert res.status_code == 200, res.text
        assert httpx.post(feedback, json={"request_id": "nope", "score": 1}).status_code == 400
        n = sum(d == candidate.id for d in answered.values())
        assert abs(n - 72) < 4 * (240 * 0.3 * 0.7) ** 0.5  # Binomial(240, 0.3) within 4 sd
        again = [_ask(client, f"user-{i}")[0] for i in range(40)]
        assert again == [answered[f"user-{i}"] for i in range(40)]  # sticky per user

        page = httpx.get(url.rsplit("/v1", 1)[0] + "/ui/experiments")
        assert page.status_code == 200 and exp.id in page.text and "running" in page.text
        assert page.text.count("<tr>") >= 4  # two arms, and the signals

        ab.set_share("voice", 1.0)  # everyone, no restart
        time.sleep(REFRESH_S + 0.5)
        assert {_ask(client, f"user-{i}")[0] for i in range(10)} == {candidate.id}
    rows = _settled(240 + 40 + 10)
    assert all(r.experiment_id == exp.id and r.arm in ("incumbent", "candidate") for r in rows)
    now = ab.status("voice")
    assert (
        now.arms["candidate"].requests
        == n + sum(answered[f"user-{i}"] == candidate.id for i in range(40)) + 10
    )
    assert now.arms["candidate"].scored == n and now.arms["incumbent"].scored == 240 - n
    assert now.arms["incumbent"].usd_per_1k and now.arms["candidate"].p95_ms is not None
    verdict = now.signals["feedback"]
    assert verdict.candidate == 100.0 and verdict.verdict == "candidate wins"
    assert now.signals["success"].verdict == "inconclusive"  # nothing failed on either arm

    from gateway.serve.usage import usage

    by_arm = {r.group: r.requests for r in usage(by="arm").rows}
    assert by_arm == {
        "voice candidate": now.arms["candidate"].requests,
        "voice incumbent": now.arms["incumbent"].requests,
    }

    promoted = ab.promote("voice")
    assert promoted.state == "promoted" and promoted.decision["signals"]["feedback"]["verdict"]
    with ServeStore() as store:
        assert store.aliases()["voice"] == [candidate.id, "brand-voice"]
    with pytest.raises(Exception, match="promoted"):
        ab.stop("voice")  # decided: only `rollback` undoes a promotion (test_ab_faults)


def test_a_failing_candidate_falls_back_and_the_experiment_survives_a_restart(openai_dep):  # noqa: F811
    import socket

    from gateway.journal import Journal

    _, incumbent = openai_dep
    with socket.socket() as s:  # a port nothing listens on: the candidate's engine is down
        s.bind(("127.0.0.1", 0))
        dead_port = s.getsockname()[1]
    with Journal() as journal:
        broken = journal.add_deployment(
            None, "ollama", "voice-local", endpoint=f"http://127.0.0.1:{dead_port}", state="live"
        )
    with ServeStore() as store:
        store.set_alias("voice", ["brand-voice"])
    ab.start("voice", broken, 1.0)
    with running() as url:
        client = openai.OpenAI(base_url=url, api_key="x", max_retries=0)
        assert {_ask(client, f"u{i}")[0] for i in range(5)} == {incumbent.id}
    with running() as url:  # a new gateway process reads the same experiment
        client = openai.OpenAI(base_url=url, api_key="x", max_retries=0)
        assert {_ask(client, f"u{i}")[0] for i in range(5)} == {incumbent.id}
    _settled(10)
    now = ab.status("voice")
    assert now.arms["candidate"].requests == 10 and now.arms["candidate"].failures == 10
    assert now.signals["success"].candidate == 0.0
    assert json.loads(json.dumps(now.to_json()))["arms"]["candidate"]["failures"] == 10


def test_auto_promotes_a_clear_winner_by_itself(openai_dep, monkeypatch):  # noqa: F811
    _, incumbent = openai_dep
    monkeypatch.setenv("TUNEGATE_AB_CHECK_S", "0.5")
    candidate = deploy(incumbent.meta["job"], "openai", name="brand-voice-v3")
    with ServeStore() as store:
        store.set_alias("voice", ["brand-voice"])
    exp = ab.start("voice", "brand-voice-v3", 0.5, auto=ab.Auto(min_requests=20))
    with running() as url:
        client = openai.OpenAI(base_url=url, api_key="x", max_retries=0)
        feedback = url.rsplit("/v1", 1)[0] + "/tunegate/feedback"
        for i in range(200):
            dep_id, rid = _ask(client, f"user-{i}")
            liked = dep_id == candidate.id or i % 2 == 0
            httpx.post(feedback, json={"request_id": rid, "thumbs": "up" if liked else "down"})
        deadline = time.monotonic() + 20
        while ab.status("voice").experiment.running and time.monotonic() < deadline:
            time.sleep(0.25)
    done = ab.status(exp.id).experiment
    assert done.state == "promoted" and done.decision["by"] == "auto"
    assert "feedback" in done.decision["why"] and "candidate wins" in done.decision["why"]
    with ServeStore() as store:
        assert store.aliases()["voice"][0] == candidate.id


class _SlowEngine:
    """An OpenAI-compatible chat endpoint that takes `delay` seconds to answer: a candidate
    the client must never wait for."""

    def __init__(self, delay: float, reply=lambda body: "slowly"):
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        engine = self
        self.requests = 0
        self.bodies: list[dict] = []

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["content-length"])))
                engine.bodies.append(body)
                engine.requests += 1
                time.sleep(delay)
                answer = {
                    "id": "chatcmpl-slow",
                    "object": "chat.completion",
                    "created": 0,
                    "model": body["model"],
                    "choices": [{"index": 0, "finish_reason": "stop",
                                 "message": {"role": "assistant", "content": reply(body)}}],
                    "usage": {"prompt_tokens": 9, "completion_tokens": 1, "total_tokens": 10},
                }  # fmt: skip
                data = json.dumps(answer).encode()
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()


def _candidate_on(engine: _SlowEngine) -> str:
    """A live deployment answered by `engine`, and the alias `voice` on the incumbent."""
    from gateway.journal import Journal

    with Journal() as journal:
        dep = journal.add_deployment(None, "ollama", "voice-2", endpoint=engine.url, state="live")
    with ServeStore() as store:
        store.set_alias("voice", ["brand-voice"])
    return dep


def _timed(client: openai.OpenAI, model: str, user: str) -> tuple[float, str]:
    start = time.perf_counter()
    raw = client.chat.completions.with_raw_response.create(
        model=model, messages=QUESTION, user=user, max_tokens=8
    )
    return time.perf_counter() - start, raw.headers["x-tunegate-deployment"]


def test_shadow_copies_never_delay_the_client(openai_dep):  # noqa: F811
    from statistics import median

    _, incumbent = openai_dep
    slow = _SlowEngine(delay=1.0)
    try:
        exp = ab.start("voice", _candidate_on(slow), 1.0, shadow=True)
        with running() as url:
            client = openai.OpenAI(base_url=url, api_key="x", max_retries=0)
            alone = [_timed(client, "brand-voice", f"a{i}") for i in range(12)]  # no experiment
            shadowed = [_timed(client, "voice", f"u{i}") for i in range(12)]
            assert {dep for _, dep in shadowed} == {incumbent.id}  # clients keep the incumbent
            # the candidate takes a second; the client never waits for it
            assert median(t for t, _ in shadowed) < median(t for t, _ in alone) + 0.25
            assert max(t for t, _ in shadowed) < 0.9
            deadline = time.monotonic() + 20
            while slow.requests < 12 and time.monotonic() < deadline:
                time.sleep(0.1)
            assert slow.requests == 12
            rows = _settled(12 + 12 + 12)
            health = httpx.get(url.removesuffix("/v1") + "/tunegate/health").json()
            assert health["shadow"] == {"sent": 12, "dropped": 0}
        shadow_rows = [r for r in rows if r.arm == "shadow"]
        assert len(shadow_rows) == 12 and all(r.request_id.endswith("-shadow") for r in shadow_rows)
        assert all(r.latency_ms >= 1000 and r.status == 200 for r in shadow_rows)
        now = ab.status(exp.id)
        assert now.arms["incumbent"].requests == 12 and now.arms["candidate"].requests == 12
        assert now.arms["candidate"].p50_ms >= 1000 > now.arms["incumbent"].p50_ms
    finally:
        slow.close()


def test_the_scorer_reads_references_the_upstreams_never_see(openai_dep):  # noqa: F811
    """`--scorer exact`: requests carry `metadata.reference`; the gateway strips it, scores the
    client's answer and the shadow copy's, and the candidate (which answers the reference)
    wins on the scorer signal."""
    slow = _SlowEngine(delay=0.0)
    try:
        exp = ab.start(
            "voice", _candidate_on(slow), 1.0, shadow=True, scorer="exact", log_bodies_days=7
        )
        with running() as url:
            client = openai.OpenAI(base_url=url, api_key="x", max_retries=0)
            for i in range(30):
                asked = [{"role": "user", "content": f"my key is {SECRET}, shelf {i}?"}]
                client.chat.completions.create(
                    model="voice", messages=asked, user=f"u{i}",
                    metadata={"reference": "slowly", "ticket": str(i)},
                )  # fmt: skip
            deadline = time.monotonic() + 20
            while slow.requests < 30 and time.monotonic() < deadline:
                time.sleep(0.1)
            _settled(60)
            time.sleep(0.5)  # the scores are written off the request path
        assert all(b["metadata"] == {"ticket": b["metadata"]["ticket"]} for b in slow.bodies)
        now = ab.status(exp.id)
        scored = now.signals["scorer"]
        assert (scored.n_incumbent, scored.n_candidate) == (30, 30)
        assert scored.incumbent == 0.0 and scored.candidate == 100.0
        assert scored.verdict == "candidate wins" and "feedback" not in now.signals
        # --log-bodies: both answers of every request kept, redacted, and deletable
        kept = ab.bodies("voice")
        assert len(kept) == 60 and {b["arm"] for b in kept} == {"incumbent", "shadow"}
        assert SECRET not in json.dumps(kept) and all(b["answer"] for b in kept)
        assert any(b["prompt"][0]["content"].endswith("shelf 7?") for b in kept)
        assert ab.forget("voice") == 60 and ab.bodies("voice") == []
    finally:
        slow.close()


def _prefers_slowly(body: dict) -> str:
    """A judge that knows what it likes: the answer `slowly`, in whichever position."""
    prompt = body["messages"][0]["content"]
    assert body["response_format"]["schema"]["required"] == ["winner"]
    return json.dumps({"winner": "A" if "Answer A:\nslowly" in prompt else "B"})


def test_a_judge_compares_shadow_pairs_within_its_budget(openai_dep):  # noqa: F811
    candidate = _SlowEngine(delay=0.0)
    judge = _SlowEngine(delay=0.0, reply=_prefers_slowly)
    try:
        with pytest.raises(Exception, match="one of the experiment's arms"):
            ab.start("voice", _candidate_on(candidate), 1.0, shadow=True,
                     judge=ab.Judge("http://127.0.0.1:9/v1#brand-voice"))  # fmt: skip
        with pytest.raises(Exception, match="shadow"):
            ab.start("voice", "voice-2", 1.0, judge=ab.Judge(judge.url + "/v1#judge"))
        # a pair's prompts are ~700 characters: at $100/1M tokens in, ~$0.02 a pair; $0.2 buys ~10
        rules = ab.Judge(judge.url + "/v1#judge", sample=1.0, price="100/0", max_usd=0.2)
        exp = ab.start("voice", "voice-2", 1.0, shadow=True, judge=rules)
        with running() as url:
            client = openai.OpenAI(base_url=url, api_key="x", max_retries=0)
            for i in range(30):
                client.chat.completions.create(model="voice", messages=QUESTION, user=f"u{i}")
            deadline = time.monotonic() + 20
            while candidate.requests < 30 and time.monotonic() < deadline:
                time.sleep(0.1)
            time.sleep(1.0)  # the last verdicts are written by the shadow workers
            _settled(60)
        now = ab.status(exp.id)
        judged = now.signals["judge"]
        pairs = judge.requests // 2  # both orders
        assert 5 <= pairs < 30 and judged.n_incumbent == judged.n_candidate == pairs
        assert judged.incumbent == 0.0 and judged.candidate == 100.0
        assert 0 < now.judge_usd <= 0.2  # capped, estimated before each pair
        assert now.arms["candidate"].requests == 30  # the judge's calls are no arm's traffic
    finally:
        candidate.close()
        judge.close()
