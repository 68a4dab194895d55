"""The plan's "no fine-tune" rows: a job whose eval names a prompt baseline gets it priced as
a route (no training, longer prompts); it wins only when a journaled task eval of the same base
on the same eval data found the fine-tune no better than that prompt, and it is cheaper."""

from __future__ import annotations

import json

import yaml
from click.testing import CliRunner

from cli.main import main
from gateway.evaluate.task import data_sha
from gateway.facade.plan import plan
from gateway.journal import Journal
from gateway.spec import JobSpec
from tests.support.job_files import chats, write_jsonl

BASE = "HuggingFaceTB/SmolLM2-135M-Instruct"


def _job(tmp_path, baselines, tokens_per_day="200k"):
    write_jsonl(tmp_path / "train.jsonl", chats(40))
    write_jsonl(tmp_path / "valid.jsonl", chats(8, seed=100))
    spec = {
        "base_model": BASE,
        "train": "train.jsonl",
        "validation": "valid.jsonl",
        "serving": {"tokens_per_day": tokens_per_day},
        "eval": {"scorer": "exact", "baselines": baselines},
    }
    (tmp_path / "job.yaml").write_text(yaml.safe_dump(spec))
    return tmp_path / "job.yaml"


def _measured(tmp_path, report_id, verdict, delta, shots_prompt=420.0):
    """A task eval as `tunegate eval` journals it: the arm's paired result and the tokens."""
    summary = {
        "data": str(tmp_path / "valid.jsonl"),
        "data_sha": data_sha(tmp_path / "valid.jsonl"),
        "base_model": BASE,
        "arms": [
            {
                "name": "few-shot:3",
                "label": "base + 3-shot",
                "base": 90.0,
                "tuned": 90.0 + delta,
                "delta": delta,
                "ci_low": delta - 5,
                "ci_high": delta + 5,
                "verdict": verdict,
                "says": {"ok": "on par", "improved": "fine-tune wins"}[verdict],
            }
        ],
        "usage": {
            "tuned": {"label": "fine-tune", "prompt": 40.0, "completion": 30.0, "requests": 8},
            "few-shot:3": {"label": "base + 3-shot", "prompt": shots_prompt, "completion": 30.0},
        },
    }
    with Journal() as journal:
        journal.add_eval(report_id, "task", "x", str(tmp_path), verdict="ok", summary=summary)


def test_the_prompt_is_a_priced_route_and_wins_only_on_evidence(tmp_path, catalog, cpu_machine):
    job = _job(tmp_path, ["few-shot:3"])
    spec = JobSpec.from_yaml(job)
    before = plan(spec, catalog=catalog, machine=cpu_machine, env={})
    (row,) = before.prompt_only
    assert row.baseline == "few-shot:3" and row.measured is None and not row.wins
    assert row.extra_prompt_tokens == before.report.avg_tokens * 3
    assert row.tokens_source.startswith("estimated")
    assert row.serve_usd_month.likely > 0 and row.total_usd.likely < before.choice.total_usd.likely
    assert "quality not measured" in row.status
    assert "No fine-tune (base + 3-shot)" in before.explain()
    assert before.to_json()["prompt_only"][0]["train_usd"] == 0.0

    _measured(tmp_path, "ev-won", "improved", 30.0)
    (row,) = plan(spec, catalog=catalog, machine=cpu_machine, env={}).prompt_only
    assert row.measured["report"] == "ev-won" and not row.wins  # the fine-tune beat the prompt
    assert row.extra_prompt_tokens == 380.0 and row.tokens_source == "measured in ev-won"

    _measured(tmp_path, "ev-par", "ok", 1.0)
    after = plan(spec, catalog=catalog, machine=cpu_machine, env={})
    (row,) = after.prompt_only
    assert row.wins and row.measured["report"] == "ev-par"
    assert "No fine-tune wins" in after.explain() and "ev-par" in after.explain()
    assert after.choice is not None and after.choice.kind != "prompt"  # train still trains

    out = CliRunner().invoke(main, ["plan", str(job)])
    assert out.exit_code == 0, out.output
    assert "wins: no fine-tune" in out.output and "No fine-tune wins" in out.output
    as_json = json.loads(CliRunner().invoke(main, ["plan", str(job), "--json"]).output)
    assert as_json["prompt_only"][0]["wins"] is True
    # the dashboard's plan page: the winning prompt row first, then the training offers
    from gateway.serve.dashboard.plan import plan_page

    rows = plan_page(after)["rows"]
    assert rows[0]["provider"] == "no fine-tune" and rows[0]["status"].startswith("wins: ")
    assert rows[0]["train"] == "$0" and "ev-par" in rows[0]["status"]


def test_other_eval_data_or_no_baseline_is_not_evidence(tmp_path, catalog, cpu_machine):
    job = _job(tmp_path, ["few-shot:3"])
    _measured(tmp_path, "ev-par", "ok", 1.0)
    write_jsonl(tmp_path / "valid.jsonl", chats(9, seed=300))  # the eval data changed since
    (row,) = plan(JobSpec.from_yaml(job), catalog=catalog, machine=cpu_machine, env={}).prompt_only
    assert row.measured is None and not row.wins
    assert plan(JobSpec.from_yaml(_job(tmp_path, [])), catalog=catalog, machine=cpu_machine,
                env={}).prompt_only == []  # fmt: skip
    # no serving volume: nothing to price the prompt at
    quiet = _job(tmp_path, ["few-shot:3"], tokens_per_day=0)
    assert (
        plan(JobSpec.from_yaml(quiet), catalog=catalog, machine=cpu_machine, env={}).prompt_only
        == []
    )
