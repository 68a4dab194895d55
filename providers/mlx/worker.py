"""The mlx-lm worker: `python -m providers.mlx.worker JOBDIR [--resume]`.

The spec maps onto mlx-lm's LoRA trainer: rank; alpha -> `scale` (alpha / r, or alpha / sqrt(r)
for rsLoRA); target modules -> `keys`; `layers` (or every layer) -> `num_layers`; prompt masking
for assistant-only loss. mlx-lm saves adapter weights every `save_every` steps but no optimizer
state, so `--resume` continues from the last saved weights and step with a fresh optimizer.
The final adapter is converted to PEFT format (the contract) and the mlx-lm original is kept in
`adapter/mlx/`.
"""

from __future__ import annotations

import math
import shutil
import time
import types
from pathlib import Path
from typing import Any

from providers.jobdir import JobDir, run_worker

_LEAVES = {
    "q_proj": "self_attn.q_proj",
    "k_proj": "self_attn.k_proj",
    "v_proj": "self_attn.v_proj",
    "o_proj": "self_attn.o_proj",
    "gate_proj": "mlp.gate_proj",
    "up_proj": "mlp.up_proj",
    "down_proj": "mlp.down_proj",
}


def mlx_args(cfg: dict[str, Any], job: JobDir, n_layers: int, n_train: int) -> dict[str, Any]:
    """The mlx-lm training arguments for a resolved spec (also what tests check)."""
    spec = cfg["spec"]
    tr, lora = spec["training"], spec.get("lora") or {}
    full = spec.get("method") == "full"
    rank, alpha = (8, 16.0) if full else (int(lora["rank"]), float(lora["alpha"]))  # unused if full
    scale = alpha / math.sqrt(rank) if lora.get("rslora") else alpha / rank
    targets = "all-linear" if full else lora["target_modules"]
    keys = (
        list(_LEAVES.values()) if targets == "all-linear" else [_LEAVES.get(t, t) for t in targets]
    )
    batch = min(int(tr["batch_size"]), max(1, n_train))
    accum = int(tr["grad_accum"])
    iters = max(1, math.ceil(n_train * float(tr["epochs"]) / (batch * accum)))
    every = max(1, iters // 20)
    method = spec["method"]
    return {
        "model": cfg["base_path"],
        "train": True,
        "fine_tune_type": "full" if method == "full" else ("dora" if method == "dora" else "lora"),
        "optimizer": "adamw" if str(tr["optimizer"]).startswith(("adamw", "paged")) else "adam",
        "optimizer_config": {"adam": {}, "adamw": {}},
        "data": str(job.path / "mlx-data"),
        "seed": int(tr["seed"]),
        "num_layers": min(int(lora.get("layers") or n_layers), n_layers),
        "batch_size": batch,
        "iters": iters,
        "val_batches": -1,
        "learning_rate": float(tr["learning_rate"]),
        "steps_per_report": every,
        "steps_per_eval": every if "valid" in cfg["files"] else iters + 1,
        "resume_adapter_file": None,
        "adapter_path": str(job.checkpoints),
        "save_every": every,
        "test": False,
        "max_seq_length": int(tr["max_seq_len"]),
        "grad_checkpoint": bool(tr["gradient_checkpointing"]),
        "grad_accumulation_steps": accum,
        "clear_cache_threshold": 0,
        "lr_schedule": None,
        "lora_parameters": {
            "rank": rank,
            "scale": scale,
            "dropout": 0.0 if full else float(lora["dropout"]),
            "keys": keys,
        },
        "mask_prompt": True,
        "report_to": None,
        "project_name": None,
        "trust_remote_code": False,
    }


def train(job: JobDir, cfg: dict[str, Any], resume: bool) -> dict[str, Any]:
    import mlx.core as mx
    from mlx_lm.lora import train_model
    from mlx_lm.tuner.callbacks import TrainingCallback
    from mlx_lm.tuner.datasets import load_dataset
    from mlx_lm.utils import load

    data = job.path / "mlx-data"
    data.mkdir(exist_ok=True)
    for role, name in (("train", "train.jsonl"), ("valid", "valid.jsonl")):
        if role in cfg["files"]:
            shutil.copyfile(job.path / cfg["files"][role], data / name)
    n_train = sum(1 for line in (data / "train.jsonl").read_text().splitlines() if line.strip())
    model, tokenizer = load(cfg["base_path"])
    args = mlx_args(cfg, job, len(model.layers), n_train)
    offset = 0
    if resume:
        saved = sorted(job.checkpoints.glob("*_adapters.safetensors"))
        if saved:
            offset = int(saved[-1].name.split("_")[0])
            args["resume_adapter_file"] = str(saved[-1])
            args["iters"] = max(1, args["iters"] - offset)
    total = args["iters"] + offset
    ns = types.SimpleNamespace(**args)
    train_set, valid_set, _ = load_dataset(ns, tokenizer)
    started = time.time()
    seen: dict[str, Any] = {"tokens": 0}

    class _Metrics(TrainingCallback):
        def on_train_loss_report(self, info: dict) -> None:
            step = int(info["iteration"]) + offset
            seen["tokens"] = info.get("trained_tokens", seen["tokens"])
            job.append_metric(
                {
                    "step": step,
                    "total_steps": total,
                    "epoch": round(step * ns.batch_size / max(1, n_train), 4),
                    "loss": float(info["train_loss"]),
                    "lr": float(info.get("learning_rate", 0)),
                    "tokens_per_s": round(float(info.get("tokens_per_second", 0)), 1),
                    "elapsed": round(time.time() - started, 2),
                    "time": time.time(),
                }
            )
            job.write_status(step=step, total_steps=total)

        def on_val_loss_report(self, info: dict) -> None:
            job.append_metric(
                {
                    "step": int(info["iteration"]) + offset,
                    "total_steps": total,
                    "eval_loss": float(info["val_loss"]),
                    "time": time.time(),
                }
            )

    job.write_status(state="running", total_steps=total, resumed_from=offset or None)
    train_model(ns, model, train_set, valid_set, _Metrics())
    seconds = time.time() - started
    mlx_out = job.adapter / "mlx"
    mlx_out.mkdir(parents=True, exist_ok=True)
    for name in ("adapters.safetensors", "adapter_config.json"):
        shutil.copyfile(job.checkpoints / name, mlx_out / name)
    if args["fine_tune_type"] != "full":
        from providers.mlx.adapters import mlx_to_peft

        mlx_to_peft(mlx_out, job.adapter, Path(cfg["base_path"]))
    for f in Path(cfg["base_path"]).iterdir():  # the tokenizer and chat template used
        if (
            f.name.startswith(("tokenizer", "special_tokens", "chat_template"))
            or f.suffix == ".model"
        ):
            shutil.copyfile(f, job.adapter / f.name)
    return {
        "steps": total,
        "train_seconds": round(seconds, 2),
        "trained_tokens": int(seen["tokens"]),
        "tokens_per_s": round(seen["tokens"] / seconds, 1) if seconds else None,
        "device": "mlx:" + str(mx.default_device()),
        "optimizer_state_resumed": False if offset else None,
    }


if __name__ == "__main__":
    run_worker(train)
