"""Ids a user must copy are never shortened, even in an 80-column terminal."""

from __future__ import annotations

import io
from types import SimpleNamespace

from rich.console import Console

from cli import render_jobs


def test_jobs_table_keeps_whole_ids_at_80_columns(monkeypatch):
    out = io.StringIO()
    monkeypatch.setattr(render_jobs, "console", Console(file=out, width=80, highlight=False))
    rows = [
        SimpleNamespace(
            id=f"tg-480d{i}a7934553",
            provider="together",
            state="running",
            base_model="meta-llama/Meta-Llama-3.1-8B-Instruct-Reference",
            created_at=1_780_000_000.0,
            estimate={"train_usd": {"likely": 6.14}},
            actual={"usd": 6.02},
            remote_id="ft-3b883474-f39c-40d9-9d4d-0ab7e3b1b8c1",
        )
        for i in range(2)
    ]
    render_jobs.jobs_table(rows)
    text = out.getvalue()
    assert max(len(line) for line in text.splitlines()) <= 80
    for r in rows:
        assert any(line.lstrip().startswith(r.id) for line in text.splitlines()), text


def test_waiting_into_a_pipe_prints_plain_lines(capsys, monkeypatch):
    """Into a log (not a terminal) the wait prints a line per state change, throttled."""
    from gateway.facade import waiting

    states = iter(["queued", "running", "running", "running", "succeeded"])

    class _Job:
        record = None

        def status(self):
            s = next(states)
            return SimpleNamespace(id="tg-1", provider="local", state=s, terminal=s == "succeeded")

        def progress(self):
            return {"step": 3, "total_steps": 40, "loss": 2.5}

    monkeypatch.setattr(waiting, "_PLAIN_EVERY_S", 3600.0)
    rec = waiting.wait_for(_Job(), progress=True, interval=0)
    assert rec.state == "succeeded"
    lines = capsys.readouterr().err.splitlines()
    assert lines == [
        "tg-1 local queued  step 3/40  loss 2.5000",
        "tg-1 local running  step 3/40  loss 2.5000",
        "tg-1 local succeeded  step 3/40  loss 2.5000",
    ]
