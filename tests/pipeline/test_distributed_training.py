"""Many processes for real on CPU: the unchanged TRL worker under `torchrun --nproc_per_node 2`
(DDP over gloo) on a tiny Llama. Two ranks train, rank 0 alone writes: one status with world
size 2, one adapter, no metric step twice, checkpoints marked complete; killed and resumed, the
step count carries on from the newest complete checkpoint."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest

pytest.importorskip("trl")
pytest.importorskip("peft")

from gateway.facade.jobs import job_dir
from gateway.facade.launch import launch
from providers.jobdir import COMPLETE, JobDir
from providers.runners.this_machine import worker_pids
from tests.support.job_files import local_job
from tests.support.polling import until

pytestmark = pytest.mark.slow


def _two_ranks(tmp_path: Path, tiny: Path, **training):
    spec = local_job(tmp_path, tiny, n=32, **training)
    return spec.with_overrides({"resources": {"processes": 2}})


def test_cancel_stops_every_rank(tmp_path, tiny):
    job = launch(_two_ranks(tmp_path, tiny, epochs=40), backend="local")
    jobdir = JobDir(job_dir(job.id))
    assert until(lambda: len(worker_pids(jobdir.path)) >= 3, 180), jobdir.log_tail(40)  # + 2 ranks
    assert job.cancel().state == "cancelled"
    assert until(lambda: not worker_pids(jobdir.path), 30)


def test_two_ranks_train_and_rank_zero_alone_writes(tmp_path, tiny):
    job = launch(_two_ranks(tmp_path, tiny, epochs=2), backend="local")
    rec = job.wait(interval=0.5)
    jobdir = JobDir(Path(rec.remote["jobdir"]))
    assert rec.state == "succeeded", (rec.error, jobdir.log_tail(40))
    status = jobdir.status()
    assert status["world_size"] == 2 and status["wrapped"] == "DistributedDataParallel"
    # each batch is split between the ranks: half the optimizer steps of one process
    # (32 examples x 2 epochs / (batch 4 x 2 ranks) = 8)
    assert status["total_steps"] == 8 and status["steps"] == 8
    steps = [m["step"] for m in jobdir.metrics() if m.get("loss") is not None]
    assert steps and len(steps) == len(set(steps))  # rank 1 wrote none of them again
    assert (jobdir.adapter / "adapter_model.safetensors").is_file()
    assert len(list(jobdir.path.rglob("adapter_model.safetensors"))) >= 1
    done = jobdir.complete_checkpoints()
    assert done and all((c / COMPLETE).is_file() for c in done)
    from click.testing import CliRunner

    from cli.main import main

    out = CliRunner().invoke(main, ["logs", rec.id, "--tail", "3"])
    assert out.exit_code == 0 and "-- the last 3 lines it wrote --" in out.output


def test_killed_then_resumed_carries_on_from_the_newest_complete_checkpoint(tmp_path, tiny):
    job = launch(_two_ranks(tmp_path, tiny, epochs=12), backend="local")
    jobdir = JobDir(job_dir(job.id))
    assert until(
        lambda: (c := jobdir.last_checkpoint()) is not None and int(c.name.split("-")[1]) >= 6,
        180,
    ), jobdir.log_tail(40)
    # a preemption: the launcher and both ranks (each in a session of its own) die at once
    for pid in {int(jobdir.pid_file.read_text()), *worker_pids(jobdir.path)}:
        os.killpg(pid, signal.SIGKILL)
    assert until(lambda: job.status().state == "failed", 60)
    # a checkpoint the kill cut short (no marker) is not one to resume from
    newest = max(jobdir.checkpoints.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1]))
    (newest / COMPLETE).unlink(missing_ok=True)
    resumed_at = int(jobdir.last_checkpoint().name.split("-")[1])
    assert resumed_at < int(newest.name.split("-")[1])
    before = len(jobdir.metrics())
    job.resume()
    rec = job.wait(interval=0.5)
    assert rec.state == "succeeded", (rec.error, jobdir.log_tail(40))
    status = jobdir.status()
    assert status["world_size"] == 2 and status["resumed_from"] == resumed_at
    after = [m["step"] for m in jobdir.metrics()[before:] if m.get("loss") is not None]
    assert after and min(after) > resumed_at  # carried on, did not start over
    assert status["steps"] == status["total_steps"] == 48  # 32 x 12 / (4 x 2)
    assert json.loads((jobdir.adapter / "adapter_config.json").read_text())["r"] == 8
