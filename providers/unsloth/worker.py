"""The Unsloth worker: `python -m providers.unsloth.worker JOBDIR [--resume]`.

Same contract and TRL training loop as `providers.local_hf.worker`; the model is loaded by
Unsloth's `FastLanguageModel` (4-bit base for QLoRA, its fused kernels and its offloaded gradient
checkpointing) and wrapped with its `get_peft_model`. Needs an NVIDIA GPU.
"""

from __future__ import annotations

from typing import Any

from providers.jobdir import JobDir, run_worker

_ALL_LINEAR = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def unsloth_config(cfg: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The keyword arguments for FastLanguageModel.from_pretrained and .get_peft_model."""
    spec = cfg["spec"]
    tr, lora, method = spec["training"], spec.get("lora") or {}, spec["method"]
    if method == "full":
        raise ValueError("tunegate runs full fine-tuning with the local (TRL+PEFT) backend")
    targets = lora["target_modules"]
    return {
        "load": {
            "model_name": cfg["base_path"],
            "max_seq_length": int(tr["max_seq_len"]),
            "load_in_4bit": method == "qlora",
            "dtype": None,  # Unsloth picks bf16 where the GPU has it, else fp16
        },
        "peft": {
            "r": int(lora["rank"]),
            "lora_alpha": float(lora["alpha"]),
            "lora_dropout": float(lora["dropout"]),
            "target_modules": _ALL_LINEAR if targets == "all-linear" else list(targets),
            "bias": "none",
            # Unsloth's offloaded checkpointing is part of its memory model: on unless turned off
            "use_gradient_checkpointing": False
            if tr.get("gradient_checkpointing") is False
            else "unsloth",
            "use_rslora": bool(lora.get("rslora")),
            "use_dora": method == "dora",
            "random_state": int(tr["seed"]),
        },
    }


def train(job: JobDir, cfg: dict[str, Any], resume: bool) -> dict[str, Any]:
    import torch

    if not torch.cuda.is_available():
        raise RuntimeError("Unsloth needs an NVIDIA GPU (torch sees no CUDA device)")
    import unsloth  # noqa: F401  (patches transformers/TRL; must come first)
    from unsloth import FastLanguageModel

    from providers.local_hf.worker import fit

    kwargs = unsloth_config(cfg)
    model, tokenizer = FastLanguageModel.from_pretrained(**kwargs["load"])
    peft = dict(kwargs["peft"])
    if not peft.pop("use_dora"):
        model = FastLanguageModel.get_peft_model(model, **peft)
    else:
        model = FastLanguageModel.get_peft_model(model, use_dora=True, **peft)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return fit(job, cfg, resume, model, tokenizer, None)


if __name__ == "__main__":
    run_worker(train)
