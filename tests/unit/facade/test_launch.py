"""The never-pay-twice rules of `gateway.facade.launch`, against a scripted in-memory provider.

Each test names one way a create can go wrong and asserts how many remote jobs exist after
it: exactly one when the user asked for one, none when the provider refused.
"""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

import providers
from gateway.errors import JobError, ProviderError
from gateway.facade.launch import launch, reconcile
from gateway.facade.plan import plan
from gateway.journal import Journal, lease
from gateway.spec import JobSpec
from tests.fakes import memory_provider as mem
from tests.support.job_files import job_file

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture
def world(monkeypatch):
    entry = providers.Backend("tests.fakes.memory_provider:MemoryProvider", "hosted")
    monkeypatch.setitem(providers.REGISTRY, mem.NAME, entry)
    monkeypatch.setattr(mem, "WORLD", mem.World())
    monkeypatch.setenv("TUNEGATE_RETRY_BUDGET_S", "0.2")
    monkeypatch.setenv("TUNEGATE_RETRY_MAX_WAIT_S", "0.001")
    return mem.WORLD


@pytest.fixture
def the_plan(world, tmp_path):
    return plan(JobSpec.from_yaml(job_file(tmp_path, "gpt-4o-mini")))


def _age(journal: Journal, job_id: str, seconds: float) -> None:
    """Make the job look `seconds` older to a reconciler (the 60 s rule)."""
    with sqlite3.connect(journal.path) as db:
        db.execute("UPDATE jobs SET updated_at = updated_at - ? WHERE id = ?", (seconds, job_id))


def test_the_memory_provider_is_a_provider():
    from providers.base import Provider

    assert isinstance(mem.MemoryProvider(), Provider)


def test_a_clean_create_makes_one_job(world, the_plan):
    job = launch(the_plan, backend="memory")
    assert job.record.state == "queued" and list(world.jobs) == [job.record.remote_id]
    assert world.create_calls == 1 and world.find_calls == 0


def test_a_lost_answer_is_found_and_adopted_not_created_again(world, the_plan):
    world.creates = ["lost", "ok"]
    job = launch(the_plan, backend="memory")
    assert world.create_calls == 1 and len(world.jobs) == 1
    assert job.record.remote_id in world.jobs
    assert [e.kind for e in job.events()].count("adopted") == 1


def test_timeouts_that_made_nothing_are_retried_until_one_job_exists(world, the_plan):
    world.creates = ["timeout", "timeout", "ok"]
    job = launch(the_plan, backend="memory")
    assert world.create_calls == 3 and world.find_calls == 2 and len(world.jobs) == 1
    assert job.record.remote_id in world.jobs and job.record.error is None


def test_a_refusal_makes_nothing_and_is_not_retried(world, the_plan):
    world.creates = ["refuse"]
    with pytest.raises(ProviderError, match="refused"):
        launch(the_plan, backend="memory")
    (rec,) = Journal().jobs()
    assert rec.state == "failed" and "refused" in rec.error
    assert world.create_calls == 1 and not world.jobs


def test_a_search_that_times_out_is_retried_before_another_create(world, the_plan):
    world.creates, world.finds = ["lost", "ok"], ["timeout", "ok"]
    launch(the_plan, backend="memory")
    assert world.create_calls == 1 and world.find_calls == 2 and len(world.jobs) == 1


def test_never_answered_then_adopted_on_the_next_start(world, the_plan):
    world.creates = ["timeout"]
    with pytest.raises(ProviderError, match="did not answer"):
        launch(the_plan, backend="memory")
    (rec,) = Journal().jobs()
    assert rec.remote_id is None and "unanswered" in rec.error and not world.jobs
    world.make(rec.idempotency_key)  # the provider's queue caught up after all
    notes = reconcile(Journal())
    rec = Journal().get(rec.id)
    assert notes == [f"{rec.id}: adopted memory job {rec.remote_id}"]
    assert rec.state == "queued" and rec.error is None and len(world.jobs) == 1


def test_a_crash_after_create_is_adopted_by_the_next_process(world, the_plan):
    world.creates = ["crash"]
    with pytest.raises(mem.Crash):
        launch(the_plan, backend="memory")
    (rec,) = Journal().jobs()
    assert rec.remote_id is None and not lease.held(Journal().path, rec.id)
    reconcile(Journal())
    rec = Journal().get(rec.id)
    assert rec.remote_id in world.jobs and world.create_calls == 1 and len(world.jobs) == 1


def test_a_launch_at_the_prompt_is_not_reconciled_by_another_terminal(world, the_plan):
    seen: list[list[str]] = []

    def confirm(rec, quote):
        journal = Journal()
        _age(journal, rec.id, 3600)  # the user has been at the prompt for an hour
        assert lease.held(journal.path, rec.id)
        seen.append(reconcile(journal))
        return True

    job = launch(the_plan, backend="memory", confirm=confirm)
    rec = job.record
    assert seen == [[]]
    assert rec.state == "queued" and rec.error is None and rec.finished_at is None
    assert len(world.jobs) == 1


def test_a_long_upload_is_not_reconciled_by_another_process(world, the_plan):
    """The second terminal is a real second process: the OS lock is what it sees."""
    notes: list[str] = []

    def second_terminal(rec):
        _age(Journal(), rec.id, 3600)
        out = subprocess.run(
            [
                sys.executable,
                "-c",
                "from gateway.facade.launch import open_journal; print(open_journal()[1])",
            ],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        )
        notes.append(out.stdout.strip())

    world.on_upload = second_terminal
    job = launch(the_plan, backend="memory")
    assert notes == ["[]"]
    assert job.record.state == "queued" and job.record.error is None


def test_a_dead_launcher_before_create_is_closed_after_a_minute(world, the_plan):
    def die(rec):
        raise mem.Crash()

    world.on_upload = die
    with pytest.raises(mem.Crash):
        launch(the_plan, backend="memory")
    (rec,) = Journal().jobs()
    assert reconcile(Journal()) == []  # a minute's grace even without a lease
    _age(Journal(), rec.id, 120)
    assert reconcile(Journal()) == [f"{rec.id}: interrupted before create; nothing was created"]
    assert Journal().get(rec.id).state == "failed" and world.create_calls == 0


def test_a_create_after_a_wrong_failed_mark_clears_it(world, the_plan):
    """An older tunegate (no lease) could mark a live launch failed; the create still wins."""

    def confirm(rec, quote):
        Journal().update(rec.id, state="failed", error="interrupted before create")
        return True

    rec = launch(the_plan, backend="memory", confirm=confirm).record
    assert rec.state == "queued" and rec.error is None and rec.finished_at is None


def test_a_declined_prompt_creates_nothing(world, the_plan):
    with pytest.raises(JobError, match="not confirmed"):
        launch(the_plan, backend="memory", confirm=lambda rec, quote: False)
    (rec,) = Journal().jobs()
    assert rec.state == "cancelled" and world.create_calls == 0 and not world.jobs
