"""A/B under faults: a gateway killed with SIGKILL mid-experiment has the usage records of its
last moments unwritten, and the next start writes them from its spool; it carries on splitting
when it comes back (the same users on the same
arms); `promote`, `rollback` and `stop` from three terminals at once leave one decision and a
whole alias; a promotion is undone only while the alias is still what it made it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

pytest.importorskip("openai")
pytest.importorskip("uvicorn")

import httpx
import openai

from gateway.errors import ServeError
from gateway.facade import ab
from gateway.facade.deploy import deploy
from gateway.journal.serving import ServeStore
from gateway.serve import running
from tests.contract.test_serve import openai_dep  # noqa: F401  (a fixture)
from tests.support.polling import until

ROOT = Path(__file__).resolve().parents[2]
QUESTION = [{"role": "user", "content": "what is on shelf four today"}]


@pytest.fixture
def voice(openai_dep):  # noqa: F811
    """The alias `voice` on brand-voice, and brand-voice-v2 live beside it: (incumbent,
    candidate)."""
    _, incumbent = openai_dep
    candidate = deploy(incumbent.meta["job"], "openai", name="brand-voice-v2")
    with ServeStore() as store:
        store.set_alias("voice", ["brand-voice"])
    return incumbent, candidate


def _cli(*args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "cli.main", *args],
        cwd=ROOT,
        env=dict(os.environ),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def _ask(client: openai.OpenAI, user: str) -> tuple[str, str]:
    raw = client.chat.completions.with_raw_response.create(
        model="voice", messages=QUESTION, user=user, max_tokens=8
    )
    return raw.headers["x-request-id"], raw.headers["x-tunegate-deployment"]


def _load(url: str, worker: int, answered: list, stop: threading.Event) -> None:
    """One client asking until the gateway dies: (request id, arm's deployment, user, when)."""
    client = openai.OpenAI(base_url=url, api_key="x", max_retries=0, timeout=5)
    i = 0
    while not stop.is_set():
        user = f"w{worker}-u{i % 25}"
        try:
            rid, dep = _ask(client, user)
        except openai.APIError:
            return  # the gateway is gone
        answered.append((rid, dep, user, time.monotonic()))
        i += 1


def test_kill_9_mid_experiment_loses_only_the_last_moments(voice):
    from exporters.deploy.process import free_port

    incumbent, candidate = voice
    exp = ab.start("voice", "brand-voice-v2", 0.5)
    port = free_port()
    gateway = _cli("serve", "--port", str(port))
    url = f"http://127.0.0.1:{port}/v1"
    try:
        health = f"http://127.0.0.1:{port}/tunegate/health"
        assert until(lambda: _up(health), timeout=60), gateway.stderr.read()
        answered: list = []
        stop = threading.Event()
        clients = [threading.Thread(target=_load, args=(url, w, answered, stop)) for w in range(4)]
        for t in clients:
            t.start()
        assert until(lambda: len(answered) >= 150, timeout=60, every=0.01)
        os.killpg(gateway.pid, signal.SIGKILL)
        killed = time.monotonic()
        stop.set()
        for t in clients:
            t.join(timeout=10)
    finally:
        if gateway.poll() is None:
            os.killpg(gateway.pid, signal.SIGKILL)
        gateway.wait()
    with ServeStore() as store:
        kept = {r.request_id: r for r in store.usage(experiment_id=exp.id)}
    lost = [a for a in answered if a[0] not in kept]
    # the meter commits a batch every 50 ms: what was answered before the last quarter
    # second is in the journal, whatever was in flight at the kill
    assert not [a for a in lost if a[3] < killed - 0.25], (len(lost), len(answered))
    assert len(lost) <= len([a for a in answered if a[3] >= killed - 0.25])
    assert all(kept[a[0]].arm in ("incumbent", "candidate") for a in answered if a[0] in kept)
    arm_of = {a[2]: a[1] for a in answered}

    # a new gateway: it writes what the killed one had spooled and not written, so no
    # answered request is unmetered; the experiment still runs, each user on the arm they had
    assert ab.status("voice").experiment.running
    with running() as url:
        with ServeStore() as store:
            assert not store.missing_usage([a[0] for a in answered])
        client = openai.OpenAI(base_url=url, api_key="x", max_retries=0)
        again = {user: _ask(client, user)[1] for user in list(arm_of)[:40]}
    assert again == {user: arm_of[user] for user in again}
    assert {candidate.id, incumbent.id} == set(arm_of.values())


def _up(health: str) -> bool:
    try:
        return httpx.get(health, timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def test_three_terminals_end_it_once_and_the_alias_stays_whole(voice):
    _, candidate = voice
    for _ in range(3):
        exp = ab.start("voice", "brand-voice-v2", 0.5)
        verbs = ("promote", "rollback", "stop")
        racers = {verb: _cli("ab", verb, "voice", "--json") for verb in verbs}
        results = {verb: (*p.communicate(timeout=120), p.returncode) for verb, p in racers.items()}
        for _, err, code in results.values():
            assert "Traceback" not in err, err
            assert code == 0 or "already" in err or "not running" in err or "not promoted" in err
        done = ab.status(exp.id).experiment
        with ServeStore() as store:
            alias = store.aliases()["voice"]
        if done.state == "promoted":
            assert alias == [candidate.id, "brand-voice"]
        else:  # stopped, rolled back, or promoted and then undone by the rollback
            assert alias == ["brand-voice"], (done.state, alias, results)
            assert done.decision.get("undid") in (None, "promoted")
        winners = [verb for verb, (_, _, code) in results.items() if code == 0]
        assert winners and json.loads(results[winners[-1]][0])["id"] == exp.id
        with ServeStore() as store:
            store.set_alias("voice", ["brand-voice"])


def test_a_promotion_is_undone_only_while_the_alias_is_as_it_left_it(voice):
    _, candidate = voice

    exp = ab.start("voice", "brand-voice-v2", 0.5)
    ab.promote("voice")
    undone = ab.rollback("voice")
    assert undone.state == "rolled_back" and undone.decision["undid"] == "promoted"
    assert undone.decision["promotion_by"] == "hand" and undone.id == exp.id
    with ServeStore() as store:
        assert store.aliases()["voice"] == ["brand-voice"]
    with pytest.raises(ServeError, match="is rolled_back"):
        ab.rollback(exp.id)

    # changed by hand after the promotion: refused, nothing touched
    exp = ab.start("voice", "brand-voice-v2", 0.5)
    ab.promote("voice")
    with ServeStore() as store:
        store.set_alias("voice", [candidate.id])
    with pytest.raises(ServeError, match="changed since the promotion"):
        ab.rollback("voice")
    assert ab.status(exp.id).experiment.state == "promoted"
    with ServeStore() as store:
        assert store.aliases()["voice"] == [candidate.id]

    # a later experiment ran on the alias: the earlier promotion is history
    with ServeStore() as store:
        store.set_alias("voice", [candidate.id, "brand-voice"])
    later = ab.start("voice", "brand-voice", 0.5)
    ab.stop(later.id)
    with pytest.raises(ServeError, match="later experiment"):
        ab.rollback(exp.id)
    assert ab.status(exp.id).experiment.state == "promoted"
