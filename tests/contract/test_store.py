"""The same store tests on both stores: the SQLite journal and a real PostgreSQL (a throwaway
database on a server the tests start). What the journal, the gateway's store, experiments,
the fine-tuning API, roll-up and the spool rely on must mean the same on each."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from gateway.errors import ServeError
from gateway.journal import SCHEMA_VERSION, Journal
from gateway.journal.experiments import Experiments
from gateway.journal.rollup import daily, roll_up
from gateway.journal.serving import ServeStore, UsageRecord, key_hash
from gateway.journal.teacher import TeacherLedger, teacher_spend
from gateway.serve.finetuning.store import FtStore
from gateway.serve.meter import Meter, month_start
from gateway.serve.spool import Spool, recover
from gateway.serve.usage import usage

ROOT = Path(__file__).resolve().parents[2]


def _record(rid: str, ts: float | None = None, **fields) -> UsageRecord:
    base = dict(model="m", route="chat", status=200, latency_ms=2.0)
    return UsageRecord(rid, time.time() if ts is None else ts, **{**base, **fields})


def test_migrations_apply_once_even_from_three_processes_at_once(store_target):
    code = "import sys; from gateway.journal import Journal; print(Journal(sys.argv[1]).version)"
    procs = [
        subprocess.Popen([sys.executable, "-c", code, store_target], cwd=ROOT,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(3)
    ]  # fmt: skip
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], [o[1][-400:] for o in outs]
    assert {o[0].strip() for o in outs} == {str(SCHEMA_VERSION)}
    with Journal(store_target) as journal:  # and opening it again changes nothing
        assert journal.version == SCHEMA_VERSION


def test_jobs_events_and_evals(store_target):
    with Journal(store_target) as journal:
        job = journal.record_intent(
            "local", "local", "tiny", {"method": "lora"}, estimate={"usd": 1}
        )
        journal.update(job.id, state="running", remote_id="r-1")
        assert journal.add_event(job.id, "poll", "step 1", remote_id="ev-1") > 0
        assert journal.add_event(job.id, "poll", "step 1 again", remote_id="ev-1") == 0
        done = journal.update(job.id, state="succeeded", actual={"usd": 0.5})
        assert done.terminal and done.finished_at and journal.get(job.id[:7]).id == job.id
        assert [e.kind for e in journal.events(job.id)] == ["intent", "poll"]
        journal.add_eval("ev-x", "task", "first", "/a", job_id=job.id)
        journal.add_eval("ev-x", "task", "second", "/b", job_id=job.id, summary={"n": 3})
        (ev,) = journal.evals(job.id)
        assert ev["target"] == "second" and ev["summary"] == {"n": 3}


def test_usage_keys_aliases_and_spend(store_target):
    with ServeStore(store_target) as store:
        key, secret = store.create_key("team", 5.0)
        assert set(store.key_hashes()) == {key_hash(secret)}  # only the hash is stored
        month = month_start()
        store.add_usage([_record("a", key_id=key.id, cost_usd=0.25, stream=True, prompt_tokens=7),
                         _record("b", key_id=key.id, cost_usd=0.5)])  # fmt: skip
        store.add_usage([_record("a", key_id=key.id, cost_usd=99.0)])  # the same request id
        rows = store.usage()
        assert [r.request_id for r in rows] == ["a", "b"]
        assert rows[0].stream is True and rows[0].prompt_tokens == 7 and rows[1].stream is False
        mark = store.last_usage_id()
        assert store.spend_since(month) == {key.id: 0.75}
        store.add_usage([_record("c", key_id=key.id, cost_usd=1.0)])
        assert store.spend_after(month, mark, store.last_usage_id()) == {key.id: 1.0}
        assert store.spend_since(month, mark) == {key.id: 0.75}
        assert store.missing_usage(["a", "zz"]) == {"zz"}
        with Journal(store_target) as journal:
            dep = journal.add_deployment(None, "llamacpp", "tuned", state="live")
        store.set_alias("voice", [dep])
        store.set_alias("voice", [dep, dep])
        assert store.aliases() == {"voice": [dep, dep]}
        assert store.revoke_key("team").active is False


def test_one_running_experiment_per_alias(store_target):
    with ServeStore(store_target) as store:
        exps = Experiments(store)
        exp = exps.start("voice", "dep-a", "dep-b", 0.1, {})
        with pytest.raises(ServeError, match="already runs"):
            exps.start("voice", "dep-a", "dep-c", 0.1, {})
        exps.add_body(exp, "r1", "candidate", "[]", "one")
        exps.add_body(exp, "r1", "candidate", "[]", "two")
        assert [b["answer"] for b in exps.bodies(exp.id)] == ["two"]


def test_a_fine_tuning_create_is_claimed_once_by_racing_writers(store_target):
    winners: list[object] = []
    with FtStore(store_target) as store:

        def claim() -> None:
            with FtStore(store_target) as own:  # each its own connection, as replicas have
                found = own.claim("req-1", "sha", None, {"model": "m"}, None)
                if found is not None:
                    winners.append(found)

        racers = [threading.Thread(target=claim) for _ in range(6)]
        for t in racers:
            t.start()
        for t in racers:
            t.join()
        assert len(winners) == 1
        assert store.ft_by_key("req-1") is not None


def test_roll_up_keeps_totals_and_budgets(store_target):
    old = time.time() - 200 * 86_400
    with ServeStore(store_target) as store:
        key, _ = store.create_key("k")
        store.add_usage(
            [_record(f"old-{i}", old + i, key_id=key.id, cost_usd=0.1, prompt_tokens=10,
                     status=500 if i == 0 else 200) for i in range(30)]
            + [_record("new", key_id=key.id, cost_usd=1.0, completion_tokens=4)]
        )  # fmt: skip
        before = usage(store_target, by="key", since=old - 86_400).to_json()
        spend_before = store.spend_since(old - 86_400)
        assert roll_up(store, retention_days=90) == 30
        assert roll_up(store, retention_days=90) == 0  # nothing left to fold
        assert [r.request_id for r in store.usage(since=0)] == ["new"]
        (day,) = daily(store, old - 86_400)
        assert (day.requests, day.errors, day.prompt_tokens) == (30, 1, 300)
        after = usage(store_target, by="key", since=old - 86_400).to_json()
        for field in ("requests", "errors", "prompt_tokens", "completion_tokens"):
            assert after["rows"][0][field] == before["rows"][0][field]
        assert after["rows"][0]["usd"] == pytest.approx(before["rows"][0]["usd"])
        assert store.spend_since(old - 86_400)[key.id] == pytest.approx(spend_before[key.id])


def test_teacher_ledger_sums_are_numbers(store_target):
    with Journal(store_target) as journal:
        ledger = TeacherLedger(journal, "t", {"temperature": 0})
        key = ledger.asking("p1", 0)
        ledger.answered(key, "hi", "stop", (3, 2), 0.01)
        ledger.asking("p2", 0)
        (row,) = teacher_spend(journal)
        assert (row["answered"], row["in_flight"], row["prompt_tokens"]) == (1, 1, 3)
        assert isinstance(row["answered"], int) and row["usd"] == pytest.approx(0.01)


def test_two_meters_share_a_budget_and_the_spool_recovers_a_kill(store_target, tmp_path):
    with ServeStore(store_target) as one, ServeStore(store_target) as two:
        key, _ = one.create_key("k", 1.0)
        a, b = Meter(one, tmp_path / "spool-a"), Meter(two, tmp_path / "spool-b")
        a.submit(_record("r1", key_id=key.id, cost_usd=0.3))
        assert a.spend(key.id) == pytest.approx(0.3)  # at once on its own replica
        deadline = time.monotonic() + 5
        while b.spend(key.id) < 0.3 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert b.spend(key.id) == pytest.approx(0.3)  # and on the other after a refresh
        a.close()
        b.close()
        assert not list((tmp_path / "spool-a").iterdir())  # a clean close leaves no spool
        # a replica killed with records still spooled: the next start writes what is missing
        spool = Spool(tmp_path / "spool-c")
        for rid in ("r1", "lost-1", "lost-2"):
            spool.append(_record(rid, key_id=key.id, cost_usd=0.1))
        assert recover(tmp_path / "spool-c", one) == 0  # its owner still holds it
        spool.close(clean=False)
        assert recover(tmp_path / "spool-c", one) == 2
        assert {r.request_id for r in one.usage(since=0)} == {"r1", "lost-1", "lost-2"}
        assert not list((tmp_path / "spool-c").iterdir())


def test_replica_heartbeats(store_target):
    import os
    import socket

    from gateway.journal.replicas import ALIVE_S, Replica, alive, beat, forget

    me = Replica("r-1", socket.gethostname(), os.getpid(), "127.0.0.1:1", 1.0, 0.0, ["dep-a"])
    gone = Replica("r-2", socket.gethostname(), 2**22 + 7, None, 2.0, 0.0, [])  # no such pid
    far = Replica("r-3", "elsewhere", 1, None, 3.0, 0.0, [])
    with ServeStore(store_target) as store:
        for r in (me, gone, far):
            beat(store, r)
        beat(store, me)  # a second beat updates, never duplicates
        assert [(r.id, r.engines) for r in alive(store)] == [("r-1", ["dep-a"]), ("r-3", [])]
        assert alive(store, now=time.time() + ALIVE_S + 1) == []  # missed beats
        forget(store, "r-1")
        assert [r.id for r in alive(store)] == ["r-3"]


def test_the_meter_keeps_every_record_while_postgresql_is_down(postgres_server, tmp_path):
    """The store stops mid-stream and comes back: batches are retried, none dropped; a stop
    while it is away leaves the spool for the next start."""
    from tests.support.postgres import Server

    pg = Server()
    pg.start()
    try:
        with ServeStore(pg.url) as store:
            meter = Meter(store, tmp_path / "spool")
            for i in range(5):
                meter.submit(_record(f"before-{i}"))
            assert until_written(meter, 5)
            pg.stop()
            for i in range(5):
                meter.submit(_record(f"during-{i}"))
            time.sleep(1.0)  # the writer fails and keeps them
            assert meter.failures >= 1 and meter.pending + meter.written >= 5
            pg.start()
            assert until_written(meter, 10, timeout=30)
            assert len(store.usage(since=0)) == 10
            pg.stop()  # away again, and the gateway stops: the spool keeps the records
            meter.submit(_record("at-stop"))
            meter.close()
            pg.start()
            assert recover(tmp_path / "spool", store) == 1
            assert len(store.usage(since=0)) == 11
    finally:
        pg.remove()


def until_written(meter: Meter, n: int, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while meter.written < n and time.monotonic() < deadline:
        time.sleep(0.05)
    return meter.written >= n
