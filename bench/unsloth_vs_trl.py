"""Unsloth vs TRL+PEFT: 30 QLoRA steps each on the same small model and GPU; prints tokens/s.

Needs an NVIDIA GPU with `pip install 'tunegate[local,unsloth]'` (and bitsandbytes). Runs both
workers through the same contract tunegate uses (`python -m providers.<backend>.worker JOBDIR`),
one after the other, and prints both throughputs and their ratio. Not a timed test.

    python bench/unsloth_vs_trl.py [--base HuggingFaceTB/SmolLM2-135M-Instruct] [--steps 30]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _rows(n: int) -> list[dict]:
    return [
        {
            "messages": [
                {"role": "user", "content": f"Tell me about tool number {i} in the library."},
                {
                    "role": "assistant",
                    "content": " ".join(["The tool is sturdy and well kept."] * 12),
                },
            ]
        }
        for i in range(n)
    ]


def run(backend: str, base: Path, steps: int, workdir: Path) -> dict:
    from gateway.spec import JobSpec
    from gateway.spec.presets import resolve

    job = workdir / backend
    job.mkdir(parents=True)
    batch = 8
    (job / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in _rows(steps * batch)))
    spec = JobSpec.from_dict(
        {
            "base_model": str(base),
            "method": "qlora",
            "lora": {"rank": 16, "alpha": 16},
            "training": {"epochs": 1, "batch_size": batch, "grad_accum": 1, "max_seq_len": 512},
        }
    )
    resolved, _ = resolve(spec, examples=steps * batch, p95_tokens=200, avg_tokens=150)
    (job / "spec.json").write_text(
        json.dumps(
            {
                "job_id": f"bench-{backend}",
                "backend": backend,
                "base_path": str(base),
                "files": {"train": "train.jsonl"},
                "spec": resolved.model_dump(mode="json"),
            }
        )
    )
    worker = f"providers.{'local_hf' if backend == 'local' else backend}.worker"
    with (job / "worker.log").open("w") as log:
        subprocess.run([sys.executable, "-m", worker, str(job)], cwd=ROOT, stdout=log, stderr=log)
    status = json.loads((job / "status.json").read_text())
    if status.get("state") != "succeeded":
        print((job / "worker.log").read_text()[-3000:])
        raise SystemExit(f"{backend} failed: {status.get('error')}")
    return status


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--base", default="HuggingFaceTB/SmolLM2-135M-Instruct")
    parser.add_argument("--steps", type=int, default=30)
    args = parser.parse_args()
    from gateway.catalog.models import resolve_model

    base = resolve_model(args.base)
    with tempfile.TemporaryDirectory() as tmp:
        results = {b: run(b, base, args.steps, Path(tmp)) for b in ("local", "unsloth")}
    for name, st in results.items():
        print(
            f"{name:8s} {st['tokens_per_s']:>10,.0f} tokens/s  {st['train_seconds']:7.1f} s  "
            f"peak RSS {st['peak_memory_gb']:.2f} GB  steps {st['steps']}"
        )
    ratio = results["unsloth"]["tokens_per_s"] / results["local"]["tokens_per_s"]
    print(f"unsloth / trl+peft throughput: {ratio:.2f}x")


if __name__ == "__main__":
    main()
