"""The whole distillation loop for real on CPU: a teacher (a tiny Llama's GGUF in llama-cpp-
python's server) answers through `tunegate serve`, the answers become a dataset with its
provenance, a student (the same tiny architecture, trained by the local worker) learns them,
and the report gives its agreement with the teacher on held-out prompts, with an interval, and
the two monthly bills side by side. The same command again asks the teacher nothing."""

from __future__ import annotations

import json

import pytest
import yaml
from click.testing import CliRunner

pytest.importorskip("openai")
pytest.importorskip("trl")
pytest.importorskip("llama_cpp.server", reason="llama-cpp-python[server] is not installed")

from cli.main import main
from gateway.facade.deploy import deploy
from gateway.facade.distill import DistillOptions, Rules, Settings, distill
from gateway.journal.serving import ServeStore
from gateway.serve import running
from tests.support.job_files import chats, write_jsonl
from tests.support.polling import until

STUDENT = {
    "lora": {"rank": 8, "alpha": 16},
    "training": {"epochs": 3, "batch_size": 4, "grad_accum": 1, "learning_rate": 5e-3},
}


@pytest.fixture(autouse=True)
def _env(converter_cache, monkeypatch):
    monkeypatch.setenv("TUNEGATE_CACHE_DIR", str(converter_cache))
    monkeypatch.setenv("TUNEGATE_POLL_S", "0.5")


def _teacher_rows() -> list:
    with ServeStore() as store:
        return [r for r in store.usage() if r.model == "tiny-teacher"]


def test_teacher_to_student_with_the_agreement_and_the_bills(tiny_sp, tmp_path):
    from exporters.gguf import convert

    gguf = convert(tiny_sp, tmp_path / "teacher.gguf", outtype="f32")[0]
    deploy(str(gguf), "llamacpp", name="tiny-teacher")
    asked = [{"messages": c["messages"][:2]} for c in chats(24, seed=40)]  # system + user
    prompts = write_jsonl(tmp_path / "prompts.jsonl", asked)
    with running() as url:
        options = DistillOptions(
            teacher="tiny-teacher", prompts=prompts, gateway=url, price="0.5/1.5",
            settings=Settings(temperature=1.0, max_tokens=8, seed=3), heldout=0.25,
            rules=Rules(truncated=False, near_duplicates=None), out=tmp_path / "set",
            student=str(tiny_sp), serve=2_000_000, student_config=STUDENT, progress=False,
        )  # fmt: skip
        result = distill(options)
        again = distill(options)
    through_gateway = until(lambda: len(rows := _teacher_rows()) >= 24 and rows, timeout=10)
    assert result.complete and result.counts == {
        "read": 24, "repeats": 0, "contaminated": 0, "train": 18, "heldout": 6,
    }  # fmt: skip
    assert result.asked.answered == 24 and len(through_gateway or []) == 24  # metered there
    assert again.asked.reused == 24 and again.asked.answered == 0
    assert result.teacher.terms.distill == "unknown" and any("no terms" in n for n in result.notes)
    prov = json.loads((tmp_path / "set" / "provenance.json").read_text())
    assert prov["teacher"]["ref"] == "tiny-teacher" and prov["settings"]["max_tokens"] == 8
    assert prov["cost"]["spent_usd"] > 0  # at the stated price
    # the tiny teacher's greedy answer is whitespace; sampled (seed fixed), it says something
    assert len(result.filtered.kept) >= 12, (tmp_path / "set" / "report.md").read_text()
    job = (tmp_path / "set" / "job.yaml").read_text()
    assert "heldout.jsonl" in job and "tokens_per_day: 2000000" in job

    # the whole loop from the command line: the answers are journaled, so only the student
    # trains; its report comes back with the dataset's
    config = tmp_path / "student.yaml"
    config.write_text(yaml.safe_dump(STUDENT))
    args = ["distill", "--teacher", "tiny-teacher", "--prompts", str(prompts), "--gateway", url,
            "--price", "0.5/1.5", "--temperature", "1", "--max-tokens", "8", "--seed", "3",
            "--heldout", "25%", "--keep-truncated", "--keep-near-duplicates",
            "--out", str(tmp_path / "set"), "--student", str(tiny_sp), "--serve", "2M/day",
            "--student-config", str(config), "--backend", "local", "--train", "--json"]  # fmt: skip
    out = CliRunner().invoke(main, args)
    assert out.exit_code == 0, out.output
    got = json.loads(out.stdout)
    assert got["asked"]["reused"] == 24 and got["asked"]["answered"] == 0
    report = got["student"]
    assert report["state"] == "succeeded"
    agree, base = report["agreement"], report["base_agreement"]
    assert agree["n"] == base["n"] == 6 and agree["low"] <= agree["share"] <= agree["high"]
    assert agree["share"] >= base["share"]  # (the tiny teacher's answers are noise)
    assert report["teacher_usd_month"] > 0 and report["student_usd_month"] is not None
    assert report["tokens_per_day"] == 2_000_000
