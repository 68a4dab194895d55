"""The eval in the workflow, for real on CPU: a tiny SentencePiece Llama trained by the local
worker from a job file with `eval:`, evaluated as `train --wait` ends (report, chart and
verdict stored with the job, shown by `status` and `jobs`), run again from the cache by
`tunegate eval JOB`, and its GGUF export gated by the same task eval against the adapter; an
export that lost the adapter is refused and left unverified."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

pytest.importorskip("trl")
pytest.importorskip("llama_cpp.server", reason="llama-cpp-python[server] is not installed")

from cli.main import main
from gateway.errors import ExportError
from gateway.evaluate.gate import run_gate
from gateway.evaluate.generate import Target, answers
from gateway.spec import EvalConfig
from tests.support.job_files import chats, write_jsonl

pytestmark = pytest.mark.slow


@pytest.fixture(autouse=True)
def _env(converter_cache, monkeypatch):
    monkeypatch.setenv("TUNEGATE_CACHE_DIR", str(converter_cache))
    monkeypatch.setenv("TUNEGATE_POLL_S", "0.5")


def _job_file(tmp_path: Path, model: Path, eval_section: dict) -> Path:
    write_jsonl(tmp_path / "train.jsonl", chats(32))
    write_jsonl(tmp_path / "valid.jsonl", chats(6, seed=500))
    spec = {
        "name": "tiny-eval",
        "base_model": str(model),
        "train": "train.jsonl",
        "validation": "valid.jsonl",
        "lora": {"rank": 8, "alpha": 16},
        "training": {"epochs": 2, "batch_size": 4, "grad_accum": 1, "learning_rate": 5e-3},
        "eval": eval_section,
    }
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def test_train_wait_evaluates_then_the_export_is_gated(tiny_sp, tmp_path):
    job_yaml = _job_file(tmp_path, tiny_sp, {"scorer": "regex", "pattern": r"\S+", "max_tokens": 8})
    runner = CliRunner()
    out = runner.invoke(main, ["train", str(job_yaml), "--backend", "local", "--yes", "--wait"])
    assert out.exit_code == 0, out.output
    assert "task eval (valid.jsonl, regex)" in out.output
    jobs = json.loads(runner.invoke(main, ["jobs", "--json"]).output)
    job_id = jobs[0]["id"]
    assert jobs[0]["state"] == "succeeded" and jobs[0]["eval"]["kind"] == "task"
    status = json.loads(runner.invoke(main, ["status", job_id, "--json"]).output)
    (task,) = status["evals"]
    assert task["summary"]["n"] == 6 and task["verdict"] in ("improved", "ok", "inconclusive")
    folder = Path(task["path"])
    assert folder.parent.parent.name == job_id  # stored with the job: JOBDIR/evals/ID
    assert (folder / "report.md").is_file() and (folder / "deltas.png").is_file()
    report = json.loads((folder / "report.json").read_text())
    assert report["tuned"]["job_id"] == job_id and report["cached"] == 0
    events = runner.invoke(main, ["logs", job_id]).output
    assert "task eval: " in events and str(folder) in events

    again = runner.invoke(main, ["eval", job_id, "--json"])
    assert again.exit_code == 0, again.output
    rerun = json.loads(again.output)["reports"][0]
    assert rerun["cached"] == 12  # base and tuned answers read back, nothing generated
    assert rerun["stats"] == report["stats"]

    # the export: the adapter's answers are the references, so the gate measures exactly
    # how many answers the f32 GGUF keeps
    adapter = Path(status["artifacts"][0]["uri"])
    prompts = [c["messages"][:-1] for c in chats(6, seed=500)]
    mine, _ = answers(
        Target("a", "hf", "hf", path=tiny_sp, adapter=adapter), prompts, 8, "a", False
    )
    held = write_jsonl(
        tmp_path / "own.jsonl",
        [
            {"messages": [*p, {"role": "assistant", "content": a}]}
            for p, a in zip(prompts, mine, strict=True)
        ],
    )
    args = ["export", job_id, "--to", "gguf", "--quant", "f32", "--eval-data", str(held)]
    out = runner.invoke(main, [*args, "--eval-scorer", "exact", "--max-drop", "50"])
    assert out.exit_code == 0, out.output
    assert "task eval (exact, 6 examples): source 100.0 -> export" in out.output
    status = json.loads(runner.invoke(main, ["status", job_id, "--json"]).output)
    gate = next(e for e in status["evals"] if e["kind"] == "export-gate")
    assert gate["verdict"] == "passed" and gate["summary"]["base"] == 100.0
    gguf = next(a for a in status["artifacts"] if a["kind"] == "gguf")
    export_json = json.loads((Path(gguf["uri"]).parent / "export.json").read_text())
    assert export_json["task_eval"]["passed"] is True
    assert export_json["task_eval"]["n"] == 6
    shown = runner.invoke(main, ["status", job_id], env={"COLUMNS": "250"}).output
    assert "export gate: passed" in shown


def test_an_export_that_lost_the_adapter_is_left_unverified(tiny_sp, tmp_path):
    from exporters.pipeline import export
    from tests.support.tiny_models import lora_adapter

    adapter = lora_adapter(tiny_sp, tmp_path / "lora", r=8, lora_alpha=16, scale=4.0)
    prompts = [c["messages"][:-1] for c in chats(8, seed=40)]
    source = Target(str(adapter), "hf", "hf", path=tiny_sp, adapter=adapter)
    mine, _ = answers(source, prompts, 8, "a", False)
    held = write_jsonl(
        tmp_path / "own.jsonl",
        [
            {"messages": [*p, {"role": "assistant", "content": a}]}
            for p, a in zip(prompts, mine, strict=True)
        ],
    )
    cfg = EvalConfig(data=held, scorer="exact", max_tokens=8, export_max_drop=3)

    def lost_the_adapter(kind, base, adapter_dir, written, final):
        # a merge gone wrong: the "export" answers like the bare base
        return run_gate(source, Target(str(final), "hf", "hf", path=base), cfg, held)

    with pytest.raises(ExportError, match=r"dropped .* points on the export") as err:
        export(adapter, "merged", out=tmp_path / "merged", gate=lost_the_adapter)
    assert "more than the 3 allowed" in str(err.value)
    assert not (tmp_path / "merged").exists()
    record = json.loads((tmp_path / "merged.unverified" / "export.json").read_text())
    assert record["task_eval"]["passed"] is False and record["task_eval"]["base"] == 100.0
    assert record["task_eval"]["tuned"] < 97.0
    # the same merge with the adapter kept passes the real gate, through transformers
    kept = export(
        adapter,
        "merged",
        out=tmp_path / "merged-ok",
        gate=lambda kind, base, a, written, final: run_gate(
            source, Target(str(final), "hf", "hf", path=written), cfg, held
        ),
    )
    assert kept.task_eval.passed and kept.task_eval.stats.delta == 0.0 and kept.verified
