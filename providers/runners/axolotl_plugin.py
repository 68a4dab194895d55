"""An Axolotl plugin that keeps tunegate's worker contract on an Axolotl run: rank 0 appends
each logged step to JOBDIR/metrics.jsonl, keeps JOBDIR/status.json, and marks each checkpoint
COMPLETE once saved, so `tunegate status` and `logs` read an Axolotl job like any other.

Axolotl loads it from the generated config (`plugins: [providers.runners.axolotl_plugin.TunegateMetrics]`)
on the rented machine, with JOBDIR in `TUNEGATE_JOBDIR`; tunegate itself never imports it.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from axolotl.integrations.base import BasePlugin  # only on the machine Axolotl runs on
from transformers import TrainerCallback

from providers.jobdir import JobDir


class _Callback(TrainerCallback):
    def __init__(self, job: JobDir):
        self.job = job
        self.t0 = time.time()

    def on_train_begin(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
        if state.is_world_process_zero:
            self.job.write_status(state="running", total_steps=state.max_steps, runner="axolotl")

    def on_log(self, args: Any, state: Any, control: Any, logs: dict | None = None, **kw: Any):
        logs = logs or {}
        if not state.is_world_process_zero or (
            logs.get("loss") is None and logs.get("eval_loss") is None
        ):
            return
        self.job.append_metric(
            {
                "step": state.global_step,
                "total_steps": state.max_steps,
                "epoch": round(state.epoch or 0, 4),
                "loss": logs.get("loss"),
                "eval_loss": logs.get("eval_loss"),
                "lr": logs.get("learning_rate"),
                "elapsed": round(time.time() - self.t0, 2),
                "time": time.time(),
            }
        )
        self.job.write_status(step=state.global_step, total_steps=state.max_steps)

    def on_save(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
        folder = Path(args.output_dir) / f"checkpoint-{state.global_step}"
        if state.is_world_process_zero and folder.is_dir():
            self.job.mark_complete(folder)

    def on_train_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
        if state.is_world_process_zero:
            self.job.write_status(state="succeeded", steps=state.global_step)


class TunegateMetrics(BasePlugin):
    """Adds the callback above to Axolotl's trainer."""

    def add_callbacks_post_trainer(self, cfg: Any, trainer: Any) -> list[Any]:
        return [_Callback(JobDir(os.environ["TUNEGATE_JOBDIR"]))]
