"""Task presets and rules that fill every unset hyperparameter, recording where each came from.

Values (sources in docs/estimates.md): LoRA rank/alpha by task follow Unsloth's and
Together's guidance (style r16/a16, sft r32/a32, code r64/a64); LoRA lr 2e-4 (Unsloth,
QLoRA paper); full fine-tuning lr 2e-5 (TRL's default; 1e-4 destroys pretrained weights on
7B+ models); 8-bit AdamW; dropout 0.05; all linear layers; cosine schedule.
"""

from __future__ import annotations

import math
from typing import Any

from gateway.catalog.schema import ModelInfo
from gateway.spec import JobSpec, ResolvedSpec

PRESETS: dict[str, dict[str, Any]] = {
    "style": {"rank": 16, "alpha": 16},
    "sft": {"rank": 32, "alpha": 32},
    "code": {"rank": 64, "alpha": 64},
}
LEARNING_RATE = {"adapter": 2e-4, "full": 2e-5, "dpo_adapter": 5e-6, "dpo_full": 5e-7}
DEFAULT_SEQ_LEN = 2048


def epochs_for(examples: int | None) -> float:
    """Small sets need more passes; large ones overfit with more than one."""
    if examples is None or examples < 1_000:
        return 3
    return 2 if examples < 10_000 else 1


def warmup_for(total_steps: float | None) -> float:
    """Warm up ~10 % of a short run, ~3 % of a long one."""
    if total_steps is None or total_steps < 200:
        return 0.10
    return 0.05 if total_steps < 2_000 else 0.03


def seq_len_for(p95_tokens: float | None, model: ModelInfo | None) -> int:
    """The p95 example length rounded up to a multiple of 128, capped by the model's context."""
    value = max(128, math.ceil(p95_tokens / 128) * 128) if p95_tokens else DEFAULT_SEQ_LEN
    if model is not None and model.context:
        value = min(value, model.context)
    return value


def resolve(
    spec: JobSpec,
    *,
    examples: int | None = None,
    p95_tokens: float | None = None,
    avg_tokens: float | None = None,
    model: ModelInfo | None = None,
) -> tuple[ResolvedSpec, dict[str, str]]:
    """Return a copy of `spec` with every hyperparameter set, and where each value came from.

    Without a p95 length (planning from numbers), p95 is taken as twice the average: chat data
    is long-tailed, and this avoids both truncation and paying for 2048-token padding.
    """
    origin: dict[str, str] = {}
    seq_rule = "rule:p95 length"
    if p95_tokens is None and avg_tokens:
        p95_tokens, seq_rule = 2 * avg_tokens, "rule:2 x average length (no p95 known)"
    lora = spec.lora.model_copy()
    train = spec.training.model_copy()
    preset = PRESETS[spec.task]
    tag = f"preset:{spec.task}"

    def fill(section: Any, key: str, value: Any, why: str, prefix: str) -> None:
        if getattr(section, key) is None:
            setattr(section, key, value)
            origin[f"{prefix}.{key}"] = why
        else:
            origin[f"{prefix}.{key}"] = "job"

    if spec.uses_adapter:
        fill(lora, "rank", preset["rank"], tag, "lora")
        fill(lora, "alpha", float(preset["alpha"]), tag, "lora")
        fill(lora, "dropout", 0.05, "default", "lora")
        fill(lora, "target_modules", "all-linear", "default", "lora")
    # every objective beyond SFT starts from a trained model and moves it little: DPO's rates
    lr_key = ("dpo_" if spec.objective != "sft" else "") + (
        "adapter" if spec.uses_adapter else "full"
    )
    scale = train.learning_rate_multiplier or 1.0  # OpenAI's knob, applied to our default too
    why = f"default:{lr_key}" + (f" x {scale:g} (learning_rate_multiplier)" if scale != 1 else "")
    fill(train, "learning_rate", LEARNING_RATE[lr_key] * scale, why, "training")
    fill(train, "epochs", float(epochs_for(examples)), "rule:dataset size", "training")
    fill(train, "batch_size", 2, "default", "training")
    fill(train, "grad_accum", 4, "default", "training")
    fill(
        train,
        "max_seq_len",
        seq_len_for(p95_tokens, model),
        seq_rule if p95_tokens else "default",
        "training",
    )
    steps = None
    if examples:
        steps = examples * train.epochs / (train.batch_size * train.grad_accum)  # type: ignore[operator]
    fill(train, "warmup_ratio", warmup_for(steps), "rule:run length", "training")
    fill(train, "scheduler", "cosine", "default", "training")
    fill(train, "optimizer", "adamw_8bit", "default", "training")
    if train.gradient_checkpointing is None:  # decided per offer from its memory estimate
        origin["training.gradient_checkpointing"] = "plan:only where memory needs it"
    else:
        origin["training.gradient_checkpointing"] = "job"
    fill(train, "packing", False, "default", "training")
    # early stopping decides on evaluations, so it gets twice as many to decide on
    evals = 0 if spec.validation is None else (8 if train.early_stopping_patience else 4)
    fill(train, "n_evals", evals, "default", "training")
    # a checkpoint (adapter + optimizer) at each epoch's end and every 10 minutes of training:
    # a crash or preemption loses at most that, and a short job is not slowed by saving
    fill(train, "checkpoint_minutes", 10.0, "default", "training")
    uses_beta = spec.objective in ("dpo", "kto", "orpo")
    fill(
        train,
        "dpo_beta",
        0.1,
        "default" if uses_beta else "default (DPO/KTO/ORPO only)",
        "training",
    )
    grpo = "default" if spec.objective == "grpo" else "default (GRPO only)"
    fill(train, "grpo_generations", 4, grpo, "training")
    fill(train, "grpo_max_completion", 128, grpo, "training")
    data = spec.model_dump()
    data.update(lora=lora.model_dump(), training=train.model_dump())
    return ResolvedSpec.model_validate(data), origin
