import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from gateway.errors import JournalError
from gateway.journal import SCHEMA_VERSION, Journal


@pytest.fixture
def journal(tmp_path):
    with Journal(tmp_path / "j.db") as j:
        yield j


def test_schema_is_migrated_and_in_wal_mode(tmp_path, journal):
    assert journal.version == SCHEMA_VERSION
    db = sqlite3.connect(tmp_path / "j.db")
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"jobs", "events", "artifacts", "deployments"} <= tables


def test_intent_then_updates_then_terminal(journal):
    job = journal.record_intent(
        "together", "hosted", "Qwen/Qwen3-8B", {"method": "lora"}, estimate={"usd": 3.2}
    )
    assert (
        job.state == "pending" and job.idempotency_key.startswith("tgk-") and job.remote_id is None
    )
    assert journal.events(job.id)[0].kind == "intent"
    journal.update(job.id, state="running", remote_id="ft-123")
    journal.add_event(job.id, "metrics", "step 10", step=10, data={"loss": 1.2})
    done = journal.update(job.id, state="succeeded", actual={"usd": 3.0, "billed_tokens": 1000})
    assert done.terminal and done.finished_at and done.actual["usd"] == 3.0
    assert [e.step for e in journal.events(job.id)] == [None, 10]
    assert journal.unfinished() == []
    assert journal.get(job.id[:8]).id == job.id
    assert journal.by_key(job.idempotency_key).id == job.id


def test_unfinished_jobs_are_found_for_reconciliation(journal):
    a = journal.record_intent("openai", "hosted", "gpt-4.1-mini", {})
    b = journal.record_intent("local", "local", "x", {})
    journal.update(b.id, state="failed", error="boom")
    assert [j.id for j in journal.unfinished()] == [a.id]


def test_invalid_state_and_unknown_job(journal):
    job = journal.record_intent("openai", "hosted", "gpt-4.1-mini", {})
    with pytest.raises(ValueError, match="unknown state"):
        journal.update(job.id, state="exploded")
    with pytest.raises(JournalError, match="no job"):
        journal.get("tg-doesnotexist")


def test_secrets_are_never_stored(tmp_path, journal):
    job = journal.record_intent(
        "together",
        "hosted",
        "x",
        {"api_key": "sk-live-123", "nested": {"AWS_SECRET_ACCESS_KEY": "abc", "rank": 8}},
        offer={"Authorization": "Bearer zzz", "tokens_per_day": 5},
    )
    raw = (tmp_path / "j.db").read_bytes() + b"".join(
        p.read_bytes() for p in tmp_path.glob("j.db-*")
    )
    for secret in (b"sk-live-123", b"abc", b"zzz"):
        assert secret not in raw
    assert job.spec == {"nested": {"rank": 8}} and job.offer == {"tokens_per_day": 5}


def test_survives_reopen_and_writes_from_another_process(tmp_path):
    path = tmp_path / "j.db"
    with Journal(path) as j:
        job = j.record_intent("local", "local", "x", {"a": 1})
    code = (
        "import sys; from gateway.journal import Journal\n"
        f"j = Journal({str(path)!r}); j.update({job.id!r}, state='running'); j.add_event({job.id!r}, 'log', 'hi')"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
    with Journal(path) as j:
        again = j.get(job.id)
        assert again.state == "running" and again.spec == {"a": 1}
        assert [e.message for e in j.events(job.id)][-1] == "hi"


def test_refuses_a_journal_from_a_newer_version(tmp_path):
    path = tmp_path / "j.db"
    Journal(path).close()
    db = sqlite3.connect(path)
    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    db.commit()
    db.close()
    with pytest.raises(JournalError, match="newer"):
        Journal(path)


def test_artifacts_and_deployments(journal):
    job = journal.record_intent("local", "local", "x", {})
    art = journal.add_artifact(
        job.id, "adapter", "/tmp/adapter", sha256="ab" * 32, size=10, meta={"rank": 8}
    )
    dep = journal.add_deployment(art, "ollama", "brand-voice", endpoint="http://127.0.0.1:11434")
    journal.update_deployment(dep, state="ready")
    assert journal.artifacts(job.id)[0]["meta"] == {"rank": 8}
    assert journal.deployments()[0]["state"] == "ready"
    assert json.dumps(journal.deployments())  # serialisable for --json


def test_a_version_1_journal_is_migrated_with_its_jobs(tmp_path):
    from gateway.journal.schema import MIGRATIONS

    path = tmp_path / "old.db"
    db = sqlite3.connect(path)
    for statement in filter(str.strip, MIGRATIONS[0][1].split(";")):
        db.execute(statement)
    db.execute(
        "INSERT INTO jobs (id, provider, kind, state, idempotency_key, base_model, spec_json,"
        " created_at, updated_at) VALUES ('tg-old', 'openai', 'sft', 'running', 'tgk-1', 'm', '{}', 1, 1)"
    )
    db.execute("PRAGMA user_version = 1")
    db.commit()
    db.close()
    with Journal(path) as j:
        assert j.version == SCHEMA_VERSION
        old = j.get("tg-old")
        assert old.state == "running" and old.remote is None
        j.update("tg-old", remote={"files": {"training_file": "file-1"}})
        assert j.get("tg-old").remote == {"files": {"training_file": "file-1"}}
        assert j.add_event("tg-old", "remote", "step 1", remote_id="ev-1")
        assert j.add_event("tg-old", "remote", "step 1 again", remote_id="ev-1") == 0
        assert [e.message for e in j.events("tg-old")] == ["step 1"]


def test_the_store_comes_from_the_environment_then_the_config_then_the_home(monkeypatch, tmp_path):
    """`TUNEGATE_STORE` wins; else `serve.store` of the config, read again when it changes;
    else the journal file under TUNEGATE_HOME."""
    import os
    import time

    from gateway.catalog.config import config_path, set_value
    from gateway.journal.db import resolve

    home = Path(os.environ["TUNEGATE_HOME"])
    assert resolve(None) == home / "journal.db"
    set_value("serve.store", "postgresql://tg@127.0.0.1:1/a")
    assert resolve(None) == "postgresql://tg@127.0.0.1:1/a"
    time.sleep(0.01)
    set_value("serve.store", str(tmp_path / "other.db"))
    os.utime(config_path(), ns=(time.time_ns(), time.time_ns() + 1_000_000))
    assert resolve(None) == tmp_path / "other.db"
    monkeypatch.setenv("TUNEGATE_STORE", "postgresql://tg@127.0.0.1:1/b")
    assert resolve(None) == "postgresql://tg@127.0.0.1:1/b"
