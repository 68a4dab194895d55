"""Local training for real on CPU: a tiny Llama built offline, trained by the TRL worker."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest

from tests.support.tiny_models import logits_of

pytest.importorskip("trl")
pytest.importorskip("peft")

from gateway.facade.jobs import job_dir
from gateway.facade.launch import launch
from providers.jobdir import JobDir
from tests.support.job_files import local_job as _job
from tests.support.job_files import write_jsonl
from tests.support.polling import until


@pytest.mark.parametrize(
    ("objective", "method"), [("sft", "lora"), ("sft", "dora"), ("dpo", "lora")]
)
def test_trains_for_real_and_the_adapter_changes_the_model(tmp_path, tiny, objective, method):
    spec = _job(tmp_path, tiny, objective, method)
    job = launch(spec, backend="local")
    rec = job.wait(interval=0.5)
    assert rec.state == "succeeded", rec.error
    metrics = JobDir(Path(rec.remote["jobdir"])).metrics()
    losses = [m["loss"] for m in metrics if m.get("loss") is not None]
    assert len(losses) >= 3 and losses[-1] < losses[0]
    art = job.artifact()
    adapter = Path(art.uri)
    cfg = json.loads((adapter / "adapter_config.json").read_text())
    assert cfg["r"] == 8 and cfg["use_dora"] == (method == "dora")
    assert (adapter / "adapter_model.safetensors").exists() and (
        adapter / "tokenizer_config.json"
    ).exists()
    assert "im_start" in (
        (adapter / "chat_template.jinja").read_text()
        if (adapter / "chat_template.jinja").exists()
        else (adapter / "tokenizer_config.json").read_text()
    )
    delta = (logits_of(tiny, adapter) - logits_of(tiny, None)).abs().max().item()
    assert delta > 1e-3
    assert rec.actual["tokens_per_s"] > 0 and rec.actual["peak_memory_gb"] > 0


@pytest.mark.parametrize(("minutes", "saved"), [(10, {8, 16}), (0, {14, 15, 16})])
def test_evaluates_n_evals_times_and_checkpoints_at_epoch_ends_and_by_time(
    tmp_path, tiny, minutes, saved
):
    """32 examples x 2 epochs at 4 x 1 = 16 steps: `n_evals: 2` evaluates twice (the last one
    is the final result, not run again); checkpoints at each epoch's end, and with
    `checkpoint_minutes: 0` at every logging step too (here every step; the Trainer keeps the
    newest 3)."""
    spec = _job(tmp_path, tiny, n=32, valid=8, n_evals=2, checkpoint_minutes=minutes)
    rec = launch(spec, backend="local").wait(interval=0.5)
    assert rec.state == "succeeded", rec.error
    jobdir = JobDir(Path(rec.remote["jobdir"]))
    evals = [m["step"] for m in jobdir.metrics() if m.get("eval_loss") is not None]
    assert evals[:2] == [8, 16] and len(evals) == 3  # two evaluations, then the final row
    done = {int(c.name.split("-")[1]) for c in jobdir.checkpoints.glob("checkpoint-*")}
    assert done == saved
    status = jobdir.status()
    assert status["micro_batch"] == 4 and status["grad_accum"] == 1


def test_kill_9_then_resume_continues_from_the_checkpoint(tmp_path, tiny):
    spec = _job(tmp_path, tiny, n=32, valid=0, epochs=6)
    job = launch(spec, backend="local")
    jobdir = JobDir(job_dir(job.id))
    assert until(
        lambda: (c := jobdir.last_checkpoint()) is not None and int(c.name.split("-")[1]) >= 6
    )
    pid = int(jobdir.pid_file.read_text())
    os.killpg(pid, signal.SIGKILL)
    assert until(lambda: job.status().state == "failed", 30)
    rec = job.record
    assert "died" in rec.error
    ckpt = jobdir.last_checkpoint()
    resumed_at = int(ckpt.name.split("-")[1])
    assert {"optimizer.pt", "scheduler.pt"} <= {p.name for p in ckpt.iterdir()}
    assert any(p.name.startswith("rng_state") for p in ckpt.iterdir())
    before = len(jobdir.metrics())
    rec = job.resume()
    assert rec.state == "queued"
    rec = job.wait(interval=0.5)
    assert rec.state == "succeeded", rec.error
    after = jobdir.metrics()[before:]
    steps = [m["step"] for m in after if m.get("loss") is not None]
    assert steps and min(steps) > resumed_at  # carried on, did not start over
    status = jobdir.status()
    assert status["steps"] == status["total_steps"] == 48 and status["resumed_from"] == resumed_at


def test_early_stopping_on_a_plateauing_validation_set(tmp_path, tiny):
    spec = _job(tmp_path, tiny, n=32, valid=0, epochs=8, early_stopping_patience=1)
    # validation conversations unlike anything in training: its loss stops improving early
    noise = [
        {
            "messages": [
                {"role": "user", "content": "zq xv " * 8},
                {"role": "assistant", "content": f"{i} kk jj ww " * 10},
            ]
        }
        for i in range(8)
    ]
    write_jsonl(tmp_path / "valid.jsonl", noise)
    spec = spec.with_overrides({"validation": str(tmp_path / "valid.jsonl")})
    job = launch(spec, backend="local")
    rec = job.wait(interval=0.5)
    assert rec.state == "succeeded", rec.error
    status = JobDir(Path(rec.remote["jobdir"])).status()
    assert status["stopped_early"] and status["steps"] < status["total_steps"]


def test_cli_follows_and_cancels_a_running_local_job(tmp_path, tiny, monkeypatch):
    from click.testing import CliRunner

    from cli.main import main

    monkeypatch.setenv("TUNEGATE_POLL_S", "0.3")
    runner = CliRunner()
    _job(tmp_path, tiny, n=32, valid=4, epochs=2)
    res = runner.invoke(
        main, ["train", str(tmp_path / "job.yaml"), "--backend", "local", "--yes", "--json"]
    )
    assert res.exit_code == 0, res.output
    job_id = json.loads(res.stdout)["id"]
    listed = json.loads(runner.invoke(main, ["jobs", "--json"]).stdout)
    assert listed[0]["id"] == job_id and listed[0]["provider"] == "local"
    res = runner.invoke(main, ["logs", job_id, "--follow"])
    assert res.exit_code == 0 and "loss" in res.output and "->" in res.output
    status = json.loads(runner.invoke(main, ["status", job_id, "--json"]).stdout)
    assert status["state"] == "succeeded" and status["actual"]["tokens_per_s"] > 0
    assert status["progress"]["step"] == status["progress"]["total_steps"]
    # a second, longer job: cancel it while it runs
    _job(tmp_path, tiny, n=32, valid=0, epochs=50)
    res = runner.invoke(
        main, ["train", str(tmp_path / "job.yaml"), "--backend", "local", "--yes", "--json"]
    )
    second = json.loads(res.stdout)["id"]
    jobdir = JobDir(job_dir(second))
    assert until(lambda: jobdir.metrics())
    res = runner.invoke(main, ["cancel", second, "--json"])
    assert res.exit_code == 0 and json.loads(res.stdout)["state"] == "cancelled"
    pid = int(jobdir.pid_file.read_text())
    assert until(
        lambda: not Path(f"/proc/{pid}").exists() or ") Z" in Path(f"/proc/{pid}/stat").read_text(),
        10,
    )


def test_qlora_is_refused_without_an_nvidia_gpu(tmp_path, tiny):
    from gateway.errors import PlanError

    spec = _job(tmp_path, tiny, method="qlora")
    with pytest.raises(PlanError, match="QLoRA needs bitsandbytes on an NVIDIA GPU"):
        launch(spec, backend="local")


def test_plans_use_the_throughput_measured_here(tmp_path, tiny):
    from gateway.facade.plan import plan

    spec = _job(tmp_path, tiny, n=16, valid=0, epochs=1)
    before = next(o for o in plan(spec).offers if o.provider == "local" and o.kind == "local")
    rec = launch(spec, backend="local").wait(interval=0.5)
    assert rec.state == "succeeded", rec.error
    after = next(o for o in plan(spec).offers if o.provider == "local" and o.kind == "local")
    assert any("measured on this machine" in a for a in after.assumptions)
    assert after.tokens_per_second.likely == pytest.approx(rec.actual["tokens_per_s"])
    assert not any("measured on this machine" in a for a in before.assumptions)
