"""`tunegate migrate openai` against the OpenAI fake through the official SDK: every job listed,
each training file downloaded byte for byte without overwriting, and the open
alternatives planned at the volume given."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("openai")

import openai
from click.testing import CliRunner

from cli.main import main
from tests.support.job_files import chats, write_jsonl


def test_migrate_lists_downloads_and_plans(monkeypatch, tmp_path):
    from tests.fakes.openai_api import OpenAIFake

    with OpenAIFake() as fake:
        fake.env(monkeypatch)
        client = openai.OpenAI()
        made = []
        for i in range(3):
            train = write_jsonl(tmp_path / f"train{i}.jsonl", chats(10 + i, seed=i))
            with train.open("rb") as fh:
                file = client.files.create(file=fh, purpose="fine-tune")
            job = client.fine_tuning.jobs.create(
                model="gpt-4o-mini-2024-07-18", training_file=file.id, suffix=f"m{i}"
            )
            made.append((job.id, file.id, train.read_bytes()))
        out = tmp_path / "migration"
        out.mkdir()
        (out / "keep.txt").write_text("mine")
        res = CliRunner().invoke(
            main, ["migrate", "openai", "--out", str(out), "--serve", "5M/day", "--json"]
        )
        assert res.exit_code == 0, res.output
        rows = json.loads(res.output)
        assert {r["job_id"] for r in rows} == {j for j, _, _ in made}
        for job_id, file_id, data in made:
            row = next(r for r in rows if r["job_id"] == job_id)
            assert row["training_file"] == file_id
            assert Path(row["local_file"]).read_bytes() == data
            assert row["examples"] == len(data.splitlines())
            assert row["tokens_per_day"] == 5_000_000 and not row["measured"]
            bases = [a["base"] for a in row["alternatives"]]
            assert bases == ["meta-llama/Llama-3.1-8B-Instruct", "Qwen/Qwen3-8B"]
            assert all(a["route"] and a["serve_usd_month"] > 0 for a in row["alternatives"])
        assert (out / "keep.txt").read_text() == "mine"
        # run again: the same files are reused, nothing is written twice or overwritten
        before = sorted(p.name for p in out.iterdir())
        again = CliRunner().invoke(main, ["migrate", "openai", "--out", str(out)])
        assert again.exit_code == 0, again.output
        assert "OpenAI fine-tunes" in again.output and "Llama-3.1-8B" in again.output
        assert sorted(p.name for p in out.iterdir()) == before


def test_migrate_without_a_key_says_so(tmp_path):
    res = CliRunner().invoke(main, ["migrate", "openai", "--out", str(tmp_path / "m")])
    assert res.exit_code != 0 and "OPENAI_API_KEY" in res.output and "Traceback" not in res.output
