"""Three real `tunegate serve` processes on one PostgreSQL (a throwaway database on a server
the tests start), behind no balancer: the clients spread themselves. Under a bounded load
(3 replicas x 50 clients x 20 requests, official async SDK), one replica is killed with
SIGKILL and started again: no answered request lacks its usage record. A key's budget stops
within its stated tolerance across replicas, an alias set anywhere is seen everywhere within
the registry's refresh, and a fine-tuning create sent to every replica at once (and an SDK
retry landing on another replica) makes one job."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

pytest.importorskip("openai")
pytest.importorskip("uvicorn")
pytest.importorskip("psycopg")

import httpx
import openai

from exporters.deploy.process import free_port
from gateway.journal.replicas import alive
from gateway.journal.serving import ServeStore
from gateway.serve.app import KEYS_REFRESH_S
from gateway.serve.meter import REFRESH_S, WAIT_S
from gateway.serve.registry import REFRESH_S as REGISTRY_REFRESH_S
from tests.contract.test_serve import openai_dep  # noqa: F401  (a fixture)
from tests.support.job_files import chats, write_jsonl
from tests.support.polling import until

ROOT = Path(__file__).resolve().parents[2]
QUESTION = [{"role": "user", "content": "what is on shelf four today"}]
CLIENTS, REQUESTS = 50, 20


class Replica:
    def __init__(self, store: str):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "cli.main", "serve", "--port", str(self.port), "--store", store],
            cwd=ROOT, env=dict(os.environ), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True, start_new_session=True,
        )  # fmt: skip

    def up(self) -> bool:
        try:
            return httpx.get(self.url + "/tunegate/health", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def kill(self) -> str:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
        return self.proc.communicate(timeout=30)[1]

    def stop(self) -> str:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
        return self.proc.communicate(timeout=60)[1]


@pytest.fixture
def shared(pg_url, monkeypatch):
    monkeypatch.setenv("TUNEGATE_STORE", pg_url)
    return pg_url


@pytest.fixture
def fleet(shared, openai_dep):  # noqa: F811
    fake, dep = openai_dep
    with ServeStore() as store:  # made before the replicas start, so each knows them
        keys = {name: store.create_key(name) for name in ("load", "capped")}
    replicas = [Replica(shared) for _ in range(3)]
    try:
        for r in replicas:
            assert until(r.up, timeout=60), r.kill()[-2000:]
        yield fake, dep, replicas, keys
    finally:
        for r in replicas:
            r.kill()


async def _client_loop(url: str, key: str, n: int, answered: list, refused: list) -> None:
    client = openai.AsyncOpenAI(base_url=url + "/v1", api_key=key, max_retries=0, timeout=20)
    for _ in range(n):
        try:
            raw = await client.chat.completions.with_raw_response.create(
                model="voice", messages=QUESTION, max_tokens=8
            )
            answered.append(raw.headers["x-request-id"])
        except openai.RateLimitError as exc:
            refused.append(exc.response.headers.get("x-request-id"))
        except openai.APIConnectionError:
            return  # its replica was killed
    await client.close()


async def _load(urls: list[str], key: str, answered: list, refused: list, n: int) -> None:
    await asyncio.gather(
        *(_client_loop(u, key, n, answered, refused) for u in urls for _ in range(CLIENTS))
    )


def test_three_replicas_share_one_postgresql(fleet, shared):
    _, dep, replicas, keys = fleet
    secret = keys["load"][1]
    # an alias set on one is seen by all within the registry's refresh
    set_at = time.monotonic()
    with ServeStore() as store:
        store.set_alias("voice", [dep.id])
    auth = {"Authorization": f"Bearer {secret}"}

    def sees(r: Replica) -> bool:
        models = httpx.get(r.url + "/v1/models", headers=auth, timeout=5).json()["data"]
        return "voice" in {m["id"] for m in models}

    for r in replicas:
        assert until(lambda r=r: sees(r), timeout=REGISTRY_REFRESH_S + 5, every=0.1)
    assert time.monotonic() - set_at <= REGISTRY_REFRESH_S + 5

    # load on all three; the third is killed mid-way and started again
    answered: list[str] = []
    refused: list[str] = []
    urls = [r.url for r in replicas]

    def kill_third_mid_way() -> str:
        until(lambda: len(answered) >= CLIENTS * REQUESTS, timeout=120, every=0.01)
        return replicas[2].kill()

    with ThreadPoolExecutor(1) as pool:
        killed = pool.submit(kill_third_mid_way)
        began = time.monotonic()
        asyncio.run(_load(urls, secret, answered, refused, REQUESTS))
        took = time.monotonic() - began
        killed.result(timeout=60)
    assert not refused and len(answered) >= 2 * CLIENTS * REQUESTS, len(answered)
    time.sleep(WAIT_S * 4)  # the live replicas' last batches
    with ServeStore() as store:
        unwritten = len(store.missing_usage(answered))  # the killed replica's spool
    replicas[2] = Replica(shared)
    assert until(replicas[2].up, timeout=60)
    with ServeStore() as store:
        missing = store.missing_usage(answered)
    assert not missing, f"{len(missing)} of {len(answered)} answered requests were not metered"
    listed = subprocess.run([sys.executable, "-m", "cli.main", "replicas", "--json"], cwd=ROOT,
                            env=dict(os.environ), capture_output=True, text=True, check=True)  # fmt: skip
    assert sorted(r["pid"] for r in json.loads(listed.stdout)) == sorted(
        r.proc.pid for r in replicas
    )  # the killed one ages out; its successor is listed
    pid = replicas[2].proc.pid
    said = replicas[2].stop()  # SIGTERM: everything written, its spool and heartbeat removed
    assert not unwritten or f"recovered {unwritten} usage record" in said, said[-2000:]
    assert not list((Path(os.environ["TUNEGATE_HOME"]) / "serve" / "spool").glob(f"spool-{pid}-*"))
    with ServeStore() as store:
        assert pid not in {r.pid for r in alive(store)}
    print(f"{len(answered)} answered in {took:.1f} s across 3 replicas, one killed "
          f"({unwritten} records recovered from its spool); none lost")  # fmt: skip


def test_a_budget_holds_across_replicas(fleet, shared):
    _, dep, replicas, keys = fleet
    key, secret = keys["capped"]
    with ServeStore() as store:
        store.set_alias("voice", [dep.id])
    first = openai.OpenAI(base_url=replicas[0].url + "/v1", api_key=secret, max_retries=0)
    rid = first.chat.completions.with_raw_response.create(
        model="voice", messages=QUESTION, max_tokens=8
    ).headers["x-request-id"]
    with ServeStore() as store:
        each = until(lambda: [r.cost_usd for r in store.usage() if r.request_id == rid], 10)
        assert each and each[0] > 0
        budget = 150 * each[0]  # about 150 requests' worth, spread over three replicas
        store.set_budget("capped", budget)
    time.sleep(KEYS_REFRESH_S + 0.5)  # every replica reloads its keys (the stated bound)
    answered: list[str] = []
    refused: list[str] = []
    began = time.monotonic()
    asyncio.run(_load([r.url for r in replicas], secret, answered, refused, 10))
    took = time.monotonic() - began
    time.sleep(WAIT_S * 4)
    with ServeStore() as store:
        spent = sum(r.cost_usd or 0 for r in store.usage() if r.key_id == key.id)
    rate = (len(answered) + len(refused)) / took
    # stated tolerance: the requests in flight on every replica, plus what the others metered
    # while a batch waited and a replica refreshed (docs/serve.md#replicas)
    tolerance = each[0] * (3 * CLIENTS + rate * (WAIT_S + REFRESH_S + 0.25))
    assert refused, "the budget never stopped a request"
    assert budget <= spent <= budget + tolerance, (spent, budget, tolerance)
    print(f"budget ${budget:.6f}: spent ${spent:.6f} (tolerance ${tolerance:.6f}), "
          f"{len(answered)} answered, {len(refused)} refused")  # fmt: skip


def test_a_fine_tuning_create_is_one_job_across_replicas(fleet, shared, tmp_path):
    fake, _, replicas, keys = fleet
    secret = keys["load"][1]
    train = write_jsonl(tmp_path / "train.jsonl", chats(12))
    clients = [
        openai.OpenAI(base_url=r.url + "/v1", api_key=secret, max_retries=0) for r in replicas
    ]
    with train.open("rb") as fh:
        file = clients[0].files.create(file=fh, purpose="fine-tune")
    before = len(fake.jobs)

    def create(client: openai.OpenAI, headers: dict[str, str]) -> str:
        return client.fine_tuning.jobs.create(
            model="gpt-4o-mini", training_file=file.id, extra_headers=headers
        ).id

    keyed = {"Idempotency-Key": "release-7"}
    with ThreadPoolExecutor(3) as pool:
        ids = list(pool.map(lambda c: create(c, keyed), clients))
    assert len(set(ids)) == 1 and len(fake.jobs) == before + 1
    # the SDK's first attempt on one replica, its retry (no key, same body) on another
    first = create(clients[1], {"x-stainless-retry-count": "0"})
    retry = create(clients[2], {"x-stainless-retry-count": "1"})
    assert retry == first and len(fake.jobs) == before + 2


@pytest.fixture
def own_server(monkeypatch):
    """A PostgreSQL of this test's own (it is stopped and started), the store from the start."""
    from tests.support.postgres import Server

    pg = Server()
    pg.start()
    monkeypatch.setenv("TUNEGATE_STORE", pg.url)
    try:
        yield pg
    finally:
        pg.remove()


def test_a_store_away_too_long_turns_into_503_not_unmetered_answers(
    own_server,
    openai_dep,  # noqa: F811
    monkeypatch,
):
    """The gateway keeps answering while its store restarts (records wait in the buffer; the
    deployments and keys last read stand); only at the buffer's bound does it refuse, and
    every answer is metered once the store is back."""
    from gateway.serve import meter, running

    pg, (_, dep) = own_server, openai_dep
    monkeypatch.setattr(meter, "MAX_PENDING", 5)
    with running(journal_path=pg.url) as url:
        client = openai.OpenAI(base_url=url, api_key="x", max_retries=0)
        ask = client.chat.completions.with_raw_response.create
        answered = [ask(model=dep.name, messages=QUESTION, max_tokens=4).headers["x-request-id"]]
        pg.stop()
        time.sleep(max(REGISTRY_REFRESH_S, KEYS_REFRESH_S) + 0.2)  # both reload, and fail
        refused = 0
        for _ in range(12):
            try:
                raw = ask(model=dep.name, messages=QUESTION, max_tokens=4)
                answered.append(raw.headers["x-request-id"])
            except openai.InternalServerError as exc:
                assert exc.status_code == 503 and "store_down" in str(exc.body)
                refused += 1
        assert refused and len(answered) >= 5
        pg.start()
        with ServeStore(pg.url) as store:
            assert until(lambda: not store.missing_usage(answered), timeout=30)
