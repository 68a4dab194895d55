"""The GPU half of the scale-out checks (docs/scale-out.md), for a machine with an NVIDIA GPU:
the unchanged TRL worker under `torchrun --nproc_per_node N` with `resources.shard` (FSDP2),
on a tiny Llama built offline. Prints what the Trainer wrapped the model in (`status.json`'s
`wrapped`: FSDP on GPUs, where on CPU ranks accelerate keeps DDP), the world size, steps and
tokens/s, and exits 1 unless the model was sharded. Not a timed test.

    python bench/gpu_fsdp.py [--ranks 1]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--ranks", type=int, default=1)
    args = parser.parse_args()
    import torch

    if not torch.cuda.is_available():
        print("no CUDA GPU here: this check needs one", file=sys.stderr)
        return 2
    from providers.runners.this_machine import torchrun
    from tests.support.job_files import chats, write_jsonl
    from tests.support.tiny_models import tiny_llama

    work = Path(tempfile.mkdtemp(prefix="tg-fsdp-"))
    model = tiny_llama(work / "model")
    jobdir = work / "job"
    jobdir.mkdir()
    write_jsonl(jobdir / "train.jsonl", chats(64))
    spec = {
        "base_model": str(model),
        "method": "lora",
        "objective": "sft",
        "lora": {"rank": 8, "alpha": 16, "dropout": 0.0, "target_modules": "all-linear"},
        "resources": {"shard": True, "processes": args.ranks},
        "training": {
            "epochs": 2, "batch_size": 4, "grad_accum": 1, "learning_rate": 5e-3,
            "max_seq_len": 128, "warmup_ratio": 0.0, "scheduler": "constant",
            "optimizer": "adamw_torch", "gradient_checkpointing": False, "seed": 0,
            "dpo_beta": 0.1, "grpo_generations": 4, "grpo_max_completion": 32,
        },
    }  # fmt: skip
    (jobdir / "spec.json").write_text(
        json.dumps({"base_path": str(model), "files": {"train": "train.jsonl"}, "spec": spec})
    )
    command = [
        sys.executable,
        "-m",
        *torchrun(args.ranks),
        "providers.local_hf.worker",
        str(jobdir),
    ]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    status = json.loads((jobdir / "status.json").read_text())
    print(json.dumps({k: status.get(k) for k in ("state", "world_size", "wrapped", "steps", "tokens_per_s", "device")}))  # fmt: skip
    if done.returncode or status.get("state") != "succeeded":
        print(done.stdout[-3000:], done.stderr[-3000:], file=sys.stderr)
        return 1
    return 0 if "FSDP" in str(status.get("wrapped")) else 1


if __name__ == "__main__":
    sys.exit(main())
