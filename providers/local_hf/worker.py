"""The TRL + PEFT worker: `python -m providers.local_hf.worker JOBDIR [--resume]`.

SFT trains on assistant turns only (each conversation becomes one prompt -> completion example per
assistant turn, and TRL masks the prompt); DPO, KTO, ORPO and GRPO use their TRL trainers
(`providers.local_hf.trainers`). LoRA, rsLoRA, DoRA, full
fine-tuning, and QLoRA (bitsandbytes, CUDA only). Checkpoints carry optimizer, scheduler and RNG
state, so `--resume` continues exactly; early stopping watches the validation loss. Under
torchrun (`torch.distributed.run --nproc_per_node N -m providers.local_hf.worker JOBDIR`) each
rank trains its share of every batch (DDP: NCCL on GPUs, gloo on CPUs) and rank 0 writes.
"""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path
from typing import Any

from providers.jobdir import JobDir, rank, run_worker, world_size
from providers.local_hf.trainers import grpo_rows, kto_rows, reward_funcs, trainer_for

_OPTIMIZERS_CPU = {
    "adamw_8bit": "adamw_torch",
    "paged_adamw_8bit": "adamw_torch",
    "adamw": "adamw_torch",
}


def _rows(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def sft_examples(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Conversations -> one prompt/completion example per assistant turn (assistant-only loss)."""
    out: list[dict[str, Any]] = []
    for row in rows:
        msgs = row.get("messages")
        if not msgs:
            out.append(row)  # text or prompt/completion rows pass through
            continue
        for i, msg in enumerate(msgs):
            if msg.get("role") == "assistant" and msg.get("weight", 1) != 0 and i > 0:
                clean = [{k: v for k, v in m.items() if k != "weight"} for m in msgs[: i + 1]]
                example = {"prompt": clean[:i], "completion": [clean[i]]}
                if row.get("tools"):
                    example["tools"] = row["tools"]
                out.append(example)
    return out


def _metrics_callback(job: JobDir, total_steps: int, tokens_per_step: float, start_step: int):
    from transformers import TrainerCallback

    class _Metrics(TrainerCallback):
        def __init__(self) -> None:
            self.t0 = time.time()
            self.step0 = start_step

        def on_log(self, args: Any, state: Any, control: Any, logs: dict | None = None, **kw: Any):
            if not state.is_world_process_zero:
                return
            logs = logs or {}
            elapsed = time.time() - self.t0
            done = max(1, state.global_step - self.step0)
            row = {
                "step": state.global_step,
                "total_steps": state.max_steps or total_steps,
                "epoch": round(state.epoch or 0, 4),
                "loss": logs.get("loss"),
                "reward": logs.get("reward"),
                "eval_loss": logs.get("eval_loss"),
                "lr": logs.get("learning_rate"),
                "tokens_per_s": round(done * tokens_per_step / elapsed, 1) if elapsed else None,
                "elapsed": round(elapsed, 2),
                "time": time.time(),
            }
            if row["loss"] is None and row["eval_loss"] is None and row["reward"] is None:
                return
            job.append_metric(row)
            job.write_status(step=state.global_step, total_steps=row["total_steps"])

        def on_save(self, args: Any, state: Any, control: Any, **kw: Any):
            # the Trainer calls this after the checkpoint's files are written
            if state.is_world_process_zero:
                folder = Path(args.output_dir) / f"checkpoint-{state.global_step}"
                if folder.is_dir():
                    job.mark_complete(folder)

    return _Metrics()


# On a CPU the examples of one optimizer step run as one micro-batch (the same effective batch,
# the same loss: TRL normalizes by the step's token count) up to this many padded tokens: a
# larger matrix multiply keeps the cores busier, and RAM, not a GPU's memory, holds it.
# Measured on the brand-voice job (SmolLM2-135M, 2 cores): 8 x 1 runs ~14% faster than 2 x 4.
CPU_MICRO_BATCH_TOKENS = 4096


def micro_batches(tr: dict[str, Any], objective: str, cuda: bool, world: int) -> tuple[int, int]:
    """(examples per forward pass, passes per optimizer step) for the job's batch x grad_accum:
    as given on a GPU (the plan sized it to memory), under torchrun, and for GRPO (its
    generation batches follow them); on a CPU, the accumulation folded into the batch as far
    as CPU_MICRO_BATCH_TOKENS allows."""
    batch, accum = int(tr["batch_size"]), int(tr["grad_accum"])
    if cuda or world > 1 or objective == "grpo":
        return batch, accum
    length = int(tr["max_seq_len"]) * (2 if objective in ("dpo", "orpo") else 1)  # pairs
    fold = max(
        (
            f
            for f in range(1, accum + 1)
            if accum % f == 0 and batch * f * length <= CPU_MICRO_BATCH_TOKENS
        ),
        default=1,
    )
    return batch * fold, accum // fold


def _last_eval(trainer: Any) -> dict[str, Any] | None:
    """The evaluation the Trainer ran at the last step, if it did (the best model reloaded
    at the end is another model, so early stopping always evaluates again)."""
    if trainer.args.load_best_model_at_end:
        return None
    step = trainer.state.global_step
    for row in reversed(trainer.state.log_history):
        if row.get("step") == step and "eval_loss" in row:
            return row
    return None


def _timed_checkpoints(minutes: float, every: int) -> Any:
    """A checkpoint once `minutes` of training have passed since the last one (0: at every
    logging step), beside the epoch-end ones: a crash loses at most that much training, and a
    five-minute job is not slowed by twenty saves of its optimizer state."""
    from transformers import TrainerCallback

    class _Timed(TrainerCallback):
        def __init__(self) -> None:
            self.last = time.monotonic()

        def on_step_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            due = (
                state.global_step % every == 0
                if minutes == 0
                else (time.monotonic() - self.last >= minutes * 60)
            )
            if due:
                control.should_save = True

        def on_save(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            self.last = time.monotonic()

    return _Timed()


def load_hf(cfg: dict[str, Any]) -> tuple[Any, Any, Any]:
    """(model, tokenizer, peft_config) with transformers + PEFT; QLoRA loads the base in 4 bit."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    spec = cfg["spec"]
    lora, method = spec.get("lora") or {}, spec["method"]
    # the machine's cores, shared between the ranks when several train on one CPU
    cores = int(cfg.get("threads") or os.cpu_count() or 1)
    torch.set_num_threads(max(1, cores // world_size()) if not torch.cuda.is_available() else cores)
    cuda = torch.cuda.is_available()
    bf16 = cuda and torch.cuda.is_bf16_supported()
    dtype = torch.bfloat16 if bf16 else (torch.float16 if cuda else torch.float32)
    quant = None
    if method == "qlora":
        if not cuda:
            raise RuntimeError("QLoRA needs bitsandbytes on an NVIDIA GPU; use method: lora here")
        from transformers import BitsAndBytesConfig

        quant = BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_compute_dtype=dtype,
            bnb_4bit_use_double_quant=True,
        )
    base = cfg["base_path"]
    tokenizer = AutoTokenizer.from_pretrained(base)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model = AutoModelForCausalLM.from_pretrained(base, dtype=dtype, quantization_config=quant)
    peft_config = None
    if method != "full":
        from peft import LoraConfig

        peft_config = LoraConfig(
            r=int(lora["rank"]),
            lora_alpha=float(lora["alpha"]),
            lora_dropout=float(lora["dropout"]),
            target_modules=lora["target_modules"],
            use_rslora=bool(lora.get("rslora")),
            use_dora=method == "dora",
            task_type="CAUSAL_LM",
        )
    return model, tokenizer, peft_config


def train(job: JobDir, cfg: dict[str, Any], resume: bool) -> dict[str, Any]:
    model, tokenizer, peft_config = load_hf(cfg)
    return fit(job, cfg, resume, model, tokenizer, peft_config)


def fit(
    job: JobDir, cfg: dict[str, Any], resume: bool, model: Any, tokenizer: Any, peft_config: Any
) -> dict[str, Any]:
    """Train with TRL (SFT, DPO, KTO, ORPO or GRPO) and write metrics, checkpoints and the
    adapter to JOBDIR."""
    import torch
    from datasets import Dataset
    from transformers import EarlyStoppingCallback

    spec = cfg["spec"]
    tr, objective = spec["training"], spec["objective"]
    cuda = torch.cuda.is_available()
    bf16 = cuda and torch.cuda.is_bf16_supported()
    files = cfg["files"]
    train_rows = _rows(job.path / files["train"])
    valid_rows = _rows(job.path / files["valid"]) if "valid" in files else []
    if objective == "sft":
        train_rows, valid_rows = sft_examples(train_rows), sft_examples(valid_rows)
    if objective == "grpo":
        train_rows, valid_rows = grpo_rows(train_rows), grpo_rows(valid_rows)
    if objective == "kto":
        train_rows, valid_rows = kto_rows(train_rows), kto_rows(valid_rows)
    train_ds = Dataset.from_list(train_rows)
    # GRPO scores samples with rewards, not a validation loss: its validation set is not used
    eval_ds = Dataset.from_list(valid_rows) if valid_rows and objective != "grpo" else None

    epochs = float(tr["epochs"])
    per_example = int(tr["grpo_generations"]) if objective == "grpo" else 1  # completions
    world, lead = world_size(), rank() == 0  # each rank takes its share of every batch
    step_examples = int(tr["batch_size"]) * int(tr["grad_accum"])  # one optimizer step
    steps_per_epoch = max(1, math.ceil(len(train_rows) * per_example / (step_examples * world)))
    batch, accum = micro_batches(tr, objective, cuda, world)
    total = max(1, math.ceil(steps_per_epoch * epochs))
    every = max(1, total // 20)  # log often: the progress and loss curve users watch
    n_evals = int(tr.get("n_evals") or 0)  # evaluation costs a pass over the validation set
    eval_every = max(1, math.ceil(total / n_evals)) if n_evals else total
    patience = tr.get("early_stopping_patience")
    optim = tr["optimizer"]
    if not cuda:
        optim = _OPTIMIZERS_CPU.get(optim, optim)
    common: dict[str, Any] = {
        "output_dir": str(job.checkpoints),
        "num_train_epochs": epochs,
        "per_device_train_batch_size": batch,
        "per_device_eval_batch_size": batch,
        "gradient_accumulation_steps": accum,
        "learning_rate": float(tr["learning_rate"]),
        "lr_scheduler_type": tr["scheduler"],
        "warmup_steps": round(float(tr["warmup_ratio"]) * total),
        "optim": optim,
        "logging_steps": every,
        # early stopping keeps the best evaluated checkpoint, so it saves at each evaluation;
        # otherwise at each epoch's end and every `checkpoint_minutes` (`_timed_checkpoints`)
        "save_strategy": "steps" if patience else "epoch",
        "save_steps": eval_every,
        "save_total_limit": 3,
        "eval_strategy": "steps" if eval_ds is not None and (n_evals or patience) else "no",
        "eval_steps": eval_every,
        "bf16": bf16,
        "fp16": cuda and not bf16,
        "use_cpu": not cuda,
        "gradient_checkpointing": bool(tr["gradient_checkpointing"]),  # the plan decided it
        "seed": int(tr["seed"]),
        "report_to": [],
        "disable_tqdm": True,
        "dataloader_num_workers": 0,
        "max_length": int(tr["max_seq_len"]),
    }
    if (spec.get("resources") or {}).get("shard") and "RANK" in os.environ:  # under torchrun
        # the model does not fit one GPU: FSDP2 shards weights and optimizer states across the
        # ranks (accelerate enables it on GPUs only: on CPU ranks it stays DDP)
        common["fsdp"] = "full_shard auto_wrap"
        common["fsdp_config"] = {
            "fsdp_version": 2,
            "reshard_after_forward": True,
            "auto_wrap_policy": "TRANSFORMER_BASED_WRAP",
            # rank 0 loading alone deadlocks with bitsandbytes' 4-bit weights
            "cpu_ram_efficient_loading": spec["method"] != "qlora",
            "state_dict_type": "FULL_STATE_DICT",  # the adapter saved whole, by rank 0
        }
    callbacks: list[Any] = []
    if not patience:
        callbacks.append(_timed_checkpoints(float(tr.get("checkpoint_minutes", 10)), every))
    if patience and eval_ds is not None:
        common.update(
            load_best_model_at_end=True, metric_for_best_model="eval_loss", greater_is_better=False
        )
        callbacks.append(EarlyStoppingCallback(early_stopping_patience=int(patience)))
    trainer_cls, args = trainer_for(objective, tr, common)
    extra: dict[str, Any] = {}
    if objective == "grpo":
        extra["reward_funcs"] = reward_funcs(spec["rewards"], spec.get("train"))
    trainer = trainer_cls(
        model=model,
        args=args,
        train_dataset=train_ds,
        eval_dataset=eval_ds,
        processing_class=tokenizer,
        peft_config=peft_config,
        callbacks=callbacks,
        **extra,
    )
    tokens = (
        sum(len(r.get("input_ids", [])) for r in trainer.train_dataset) or len(train_rows) * 256
    )
    per_step = tokens / steps_per_epoch  # all ranks together
    last = job.last_checkpoint() if resume else None
    start_step = int(last.name.rsplit("-", 1)[1]) if last else 0
    trainer.add_callback(_metrics_callback(job, total, per_step, start_step))
    if lead:
        job.write_status(state="running", total_steps=total, resumed_from=start_step or None)
    started = time.time()
    result = trainer.train(resume_from_checkpoint=str(last) if last else None)
    seconds = time.time() - started
    trainer.save_model(str(job.adapter))  # the Trainer writes from rank 0 alone
    if lead:
        tokenizer.save_pretrained(str(job.adapter))  # the tokenizer and chat template used
    if eval_ds is not None:  # every rank takes part; rank 0 records it
        final = _last_eval(trainer) or trainer.evaluate()
    if eval_ds is not None and lead:
        job.append_metric(
            {
                "step": trainer.state.global_step,
                "total_steps": total,
                "eval_loss": final["eval_loss"],
                "final": True,
                "time": time.time(),
            }
        )
    done = trainer.state.global_step - start_step
    return {
        "steps": trainer.state.global_step,
        "stopped_early": trainer.state.global_step < total,
        "train_loss": result.training_loss,
        "train_seconds": round(seconds, 2),
        "trained_tokens": round(done * per_step),
        "tokens_per_s": round(done * per_step / seconds, 1) if seconds else None,
        "device": "cuda" if cuda else "cpu",
        "micro_batch": batch,
        "grad_accum": accum,
        "world_size": world,
        "wrapped": type(trainer.model_wrapped).__name__,  # DistributedDataParallel, FSDP...
    }


if __name__ == "__main__":
    run_worker(train)
