"""The eval in the workflow, without models: `eval:` in the job file, the journal's eval
reports, the export gate's configuration, the deltas chart and what `jobs`/`status` show."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from cli.main import main
from cli.render_jobs import eval_line
from gateway.errors import SpecError
from gateway.evaluate.gate import gate_for
from gateway.evaluate.reports import Delta, latest_verdicts, plot_deltas, store
from gateway.journal import Journal
from gateway.spec import JobSpec


def _job_yaml(tmp_path, eval_section) -> str:
    (tmp_path / "data").mkdir(exist_ok=True)
    spec = {"base_model": "HuggingFaceTB/SmolLM2-135M-Instruct", "train": "data/train.jsonl"}
    if eval_section is not None:
        spec["eval"] = eval_section
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return str(path)


def test_eval_file_shorthand_and_paths_beside_the_job_file(tmp_path):
    spec = JobSpec.from_yaml(_job_yaml(tmp_path, "data/held.jsonl"))
    assert spec.eval.data == tmp_path / "data" / "held.jsonl"
    assert spec.eval.scorer == "exact" and spec.eval.export_max_drop == 3.0
    spec = JobSpec.from_yaml(
        _job_yaml(
            tmp_path,
            {"data": "held.jsonl", "scorer": "json", "json_schema": "s.json", "suite": "tasks/"},
        )
    )
    assert spec.eval.json_schema == tmp_path / "s.json"
    assert spec.eval.suite == str(tmp_path / "tasks")
    assert JobSpec.from_yaml(_job_yaml(tmp_path, {"suite": "quick"})).eval.suite == "quick"
    assert JobSpec.from_yaml(_job_yaml(tmp_path, None)).eval is None


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ({"scorer": "regex"}, "scorer regex needs `pattern`"),
        ({"pattern": "x"}, "`pattern` is for scorer regex"),
        ({"scorer": "exact", "json_schema": "s.json"}, "`json_schema` is for scorer json"),
        ({"scorer": "bleu"}, "'bleu' is not allowed"),
        ({"export_max_drop": -1}, "greater than or equal to 0"),
        ({"data": "x", "judge": "y"}, "unknown key 'judge'"),
    ],
)
def test_a_bad_eval_section_names_the_line(tmp_path, section, message):
    path = _job_yaml(tmp_path, section)
    with pytest.raises(SpecError) as err:
        JobSpec.from_yaml(path)
    text = str(err.value)
    assert message in text and f"{path}:" in text


def _job(journal, spec):
    rec = journal.record_intent("local", "sft", "tiny", spec)
    return journal.update(rec.id, state="succeeded")


def test_gate_configuration_from_the_job_and_the_options(tmp_path):
    with Journal() as journal:
        plain = _job(journal, {"validation": "/v.jsonl"})
        assert gate_for(plain) is None  # no eval: and no options: no gate
        assert gate_for(None) is None
        gated = gate_for(plain, data=tmp_path / "h.jsonl", max_drop=5)
        assert gated.data == tmp_path / "h.jsonl" and gated.cfg.export_max_drop == 5
        assert gated.job_id == plain.id
        job = _job(
            journal,
            {
                "validation": "/v.jsonl",
                "eval": {"scorer": "regex", "pattern": "L&L", "export_max_drop": 10},
            },
        )
        gate = gate_for(job)
        assert str(gate.data) == "/v.jsonl"  # the validation file when eval names no data
        assert gate.cfg.pattern == "L&L" and gate.cfg.export_max_drop == 10
        other = gate_for(job, scorer="exact")  # a scorer given drops the job's regex pattern
        assert other.cfg.scorer == "exact" and other.cfg.pattern is None
        off = _job(journal, {"eval": {"data": "/h.jsonl", "export_max_drop": None}})
        assert gate_for(off) is None
        nodata = _job(journal, {"eval": {"scorer": "exact"}})
        with pytest.raises(SpecError, match="has no data"):
            gate_for(nodata)
        with pytest.raises(SpecError, match="needs `pattern`"):
            gate_for(plain, data=tmp_path / "h.jsonl", scorer="regex")


def test_deltas_chart_is_a_png_with_every_task(tmp_path):
    pytest.importorskip("matplotlib")
    rows = [
        Delta("arc_easy", -1.0, -4.0, 2.0, "inconclusive"),
        Delta("gsm8k", -14.0, -20.0, -11.0, "fail"),
        Delta("held.jsonl (regex)", 80.0, 70.0, 90.0, "improved"),
    ]
    png = plot_deltas(rows, tmp_path / "d.png", title="t")
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    one = plot_deltas(rows[:1], tmp_path / "one.png")
    assert int.from_bytes(one.read_bytes()[20:24], "big") < height  # one row per task
    assert width > 300


def test_reports_are_stored_with_their_job_and_journaled(tmp_path):
    pytest.importorskip("matplotlib")
    with Journal() as journal:
        job = _job(journal, {})
        summary = {"data": "/d/held.jsonl", "scorer": "exact", "n": 20, "base": 10.0}
        summary |= {"tuned": 60.0, "delta": 50.0, "ci_low": 30.0, "ci_high": 70.0}
        folder = store(
            "ev-1",
            {"id": "ev-1"},
            "# r",
            kind="task",
            target=job.id,
            job_id=job.id,
            verdict="improved",
            summary=summary,
            deltas=[Delta("held", 50.0, 30.0, 70.0, "improved")],
        )
        assert folder.endswith(f"jobs/{job.id}/evals/ev-1")
        stored = json.loads(
            (tmp_path / "tg-home" / "jobs" / job.id / "evals" / "ev-1" / "report.json").read_text()
        )
        assert stored["chart"].endswith("deltas.png")
        assert "![deltas](deltas.png)" in Path(folder, "report.md").read_text()
        gate = {"passed": False, "base": 90.0, "tuned": 70.0, "delta": -20.0, "max_drop": 3}
        store("gate-1", {}, "# g", kind="export-gate", target="x.gguf", job_id=job.id,
              verdict="failed", summary=gate)  # fmt: skip
        store("ev-free", {}, "# f", kind="task", target="/some/model", verdict="ok")
        rows = journal.evals(job.id)
        assert [r["id"] for r in rows] == ["ev-1", "gate-1"]
        assert latest_verdicts(journal)[job.id]["id"] == "ev-1"  # the job's eval, not a gate
        assert {r["id"] for r in journal.evals()} == {"ev-1", "gate-1", "ev-free"}
        line = eval_line(rows[0])
        assert "base 10.0 -> tuned 60.0 (+50.0, 95% CI [+30.0, +70.0]) improved" in line
        assert "held.jsonl, exact" in line
        assert "export gate: FAILED, source 90.0 -> export 70.0 (-20.0; allowed drop 3)" in (
            eval_line(rows[1])
        )
        runner = CliRunner()
        out = runner.invoke(main, ["jobs"], env={"COLUMNS": "200"})
        assert out.exit_code == 0 and "improved (+50.0)" in out.output
        listed = json.loads(runner.invoke(main, ["jobs", "--json"]).output)
        assert listed[0]["eval"]["verdict"] == "improved"
        status = runner.invoke(main, ["status", job.id], env={"COLUMNS": "250"})
        assert "task eval (held.jsonl, exact)" in status.output
        assert "export gate: FAILED" in status.output
        data = json.loads(runner.invoke(main, ["status", job.id, "--json"]).output)
        assert [e["kind"] for e in data["evals"]] == ["task", "export-gate"]


def test_eval_without_data_needs_a_job_with_an_eval_section():
    with Journal() as journal:
        job = _job(journal, {})
    out = CliRunner().invoke(main, ["eval", job.id])
    assert out.exit_code == 1 and "has no `eval:` in its job file" in out.output
    out = CliRunner().invoke(main, ["eval", "compare", "a", "b"])
    assert out.exit_code == 2 and "compare needs --data" in out.output
