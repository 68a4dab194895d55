"""What `tunegate serve` adds in front of an engine: latency (p50/p99) and throughput through the
gateway against the same upstream called directly, and LiteLLM's proxy on the same upstream
side by side when it is installed (`pip install 'litellm[proxy]'`; not a tunegate dependency).

`--postgres URL` (or `--postgres auto`: a throwaway server from Debian's `postgresql`, as the
tests start it) adds the gateway on a PostgreSQL store beside the one on SQLite, so the
store's cost on the door is read side by side (goal, issue 38: < 0.5 ms p50 over SQLite).

The default upstream is a minimal OpenAI-compatible server that answers at once, so the
numbers are the gateways' own cost, not generation's. `--gguf FILE` puts llama-cpp-python's
server (the engine `tunegate serve` runs for GGUF deployments) behind both instead.

Goal (issue 19): p50 overhead under 2 ms, >= 0.9x the direct throughput, ahead of LiteLLM.

    python bench/serve.py [--requests 400] [--concurrency 32] [--gguf FILE] [--litellm EXE]
                          [--postgres URL|auto]

Not a timed test: it prints medians and ratios.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
BODY = {"messages": [{"role": "user", "content": "What is 2 + 2?"}], "max_tokens": 8}
# LiteLLM's proxy refuses to start without a master key; the others ignore the header
MASTER_KEY = "sk-bench-0123456789abcdef0123456789abcdef"
AUTH = {"Authorization": f"Bearer {MASTER_KEY}"}

_UPSTREAM = r"""
import json, sys, time
from starlette.applications import Starlette
from starlette.responses import Response
from starlette.routing import Route
import uvicorn

ANSWER = json.dumps({
    "id": "chatcmpl-bench", "object": "chat.completion", "created": 0, "model": "bench",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "4"},
                 "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 9, "completion_tokens": 1, "total_tokens": 10},
}).encode()

async def chat(request):
    await request.body()
    return Response(ANSWER, media_type="application/json")

async def models(request):
    return Response(b'{"object":"list","data":[{"id":"bench","object":"model"}]}',
                    media_type="application/json")

app = Starlette(routes=[Route("/v1/chat/completions", chat, methods=["POST"]),
                        Route("/v1/models", models)])
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning",
            access_log=False)
"""


def _free_port() -> int:
    from exporters.deploy.process import free_port

    return free_port()


def _wait(url: str, proc: subprocess.Popen[bytes], what: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"{what} exited with code {proc.returncode}")
        try:
            if httpx.get(url, timeout=2, headers=AUTH).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"{what} did not answer at {url}")


def _start(argv: list[str], env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, cwd=ROOT
    )


def _upstream(gguf: Path | None) -> tuple[subprocess.Popen[bytes], str, str]:
    """(process, base URL, model name) of the engine both gateways front."""
    port = _free_port()
    if gguf is None:
        proc = _start([sys.executable, "-c", _UPSTREAM, str(port)])
        model = "bench"
    else:
        argv = [sys.executable, "-m", "llama_cpp.server", "--model", str(gguf)]
        argv += ["--host", "127.0.0.1", "--port", str(port), "--model_alias", "bench"]
        proc = _start(argv)
        model = "bench"
    base = f"http://127.0.0.1:{port}/v1"
    _wait(base + "/models", proc, "the upstream")
    return proc, base, model


def _tunegate(
    base: str, home: Path, store: str | None = None
) -> tuple[subprocess.Popen[bytes], str]:
    """`tunegate serve` in its own process, with one deployment that is the upstream; on the
    journal file, or on the PostgreSQL `store`."""
    env = {**os.environ, "TUNEGATE_HOME": str(home)}
    if store:
        env["TUNEGATE_STORE"] = store
    code = (
        "from gateway.journal import Journal\n"
        "with Journal() as j:\n"
        f"    j.add_deployment(None, 'ollama', 'bench', endpoint={base.removesuffix('/v1')!r},"
        " state='live')\n"
    )
    subprocess.run([sys.executable, "-c", code], env=env, cwd=ROOT, check=True)
    port = _free_port()
    argv = [sys.executable, "-m", "cli.main", "serve", "--port", str(port)]
    proc = _start(argv, env)
    url = f"http://127.0.0.1:{port}/v1"
    _wait(url + "/models", proc, "tunegate serve")
    return proc, url


def _litellm(
    base: str, model: str, home: Path, exe: str | None
) -> tuple[subprocess.Popen[bytes], str] | None:
    exe = exe or shutil.which("litellm") or str(Path(sys.executable).parent / "litellm")
    if not Path(exe).exists():
        return None
    config = home / "litellm.yaml"
    config.write_text(
        "model_list:\n"
        "  - model_name: bench\n"
        "    litellm_params:\n"
        f"      model: openai/{model}\n"
        f"      api_base: {base}\n"
        "      api_key: unused\n"
    )
    port = _free_port()
    env = {**os.environ, "LITELLM_LOG": "ERROR", "LITELLM_MASTER_KEY": MASTER_KEY}
    proc = _start([exe, "--config", str(config), "--port", str(port), "--num_workers", "1"], env)
    url = f"http://127.0.0.1:{port}/v1"
    _wait(url + "/models", proc, "litellm", timeout=180)
    return proc, url


async def _latencies(url: str, n: int) -> list[float]:
    """One request at a time: the added latency, in ms."""
    out = []
    async with httpx.AsyncClient(timeout=60, headers=AUTH) as http:
        for _ in range(10):  # warm the connection and both ends
            await http.post(url + "/chat/completions", json={**BODY, "model": "bench"})
        for _ in range(n):
            start = time.perf_counter()
            res = await http.post(url + "/chat/completions", json={**BODY, "model": "bench"})
            out.append((time.perf_counter() - start) * 1000)
            res.raise_for_status()
    return out


async def _throughput(url: str, n: int, concurrency: int) -> float:
    """Requests per second with `concurrency` clients sharing `n` requests."""
    left = n
    limits = httpx.Limits(max_connections=concurrency)

    async def worker(http: httpx.AsyncClient) -> None:
        nonlocal left
        while left > 0:
            left -= 1
            res = await http.post(url + "/chat/completions", json={**BODY, "model": "bench"})
            res.raise_for_status()

    async with httpx.AsyncClient(timeout=120, limits=limits, headers=AUTH) as http:
        start = time.perf_counter()
        await asyncio.gather(*(worker(http) for _ in range(concurrency)))
        return n / (time.perf_counter() - start)


def _p(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--gguf", type=Path, help="front llama-cpp-python's server on this GGUF")
    parser.add_argument("--litellm", help="the litellm command (e.g. in its own venv)")
    parser.add_argument("--postgres", help="also the gateway on this PostgreSQL store (or auto)")
    args = parser.parse_args()
    procs: list[subprocess.Popen[bytes]] = []
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:
        try:
            upstream, base, model = _upstream(args.gguf)
            procs.append(upstream)
            gateway, tg_url = _tunegate(base, Path(tmp) / "home")
            procs.append(gateway)
            routes = {"direct": base, "tunegate": tg_url}
            if args.postgres:
                store = args.postgres
                if store == "auto":
                    sys.path.insert(0, str(ROOT))
                    from tests.support import postgres

                    store = stack.enter_context(postgres.server())
                pg, routes["tunegate-pg"] = _tunegate(base, Path(tmp) / "home-pg", store)
                procs.append(pg)
            lite = _litellm(base, model, Path(tmp), args.litellm)
            if lite is None:
                print("LiteLLM: not installed (pip install 'litellm[proxy]' to compare)")
            else:
                procs.append(lite[0])
                routes["litellm"] = lite[1]
            rows = {}
            for name, url in routes.items():
                lat = asyncio.run(_latencies(url, args.requests))
                rps = asyncio.run(_throughput(url, args.requests * 2, args.concurrency))
                rows[name] = (statistics.median(lat), _p(lat, 0.99), rps)
        finally:
            for proc in procs:
                proc.terminate()
                proc.wait(timeout=10)
    what = f"llama-cpp-python on {args.gguf.name}" if args.gguf else "an instant upstream"
    print(f"\nin front of {what}; {args.requests} sequential, {args.concurrency} concurrent")
    print(f"{'route':<10} {'p50 ms':>8} {'p99 ms':>8} {'req/s':>8} {'+p50 ms':>8} {'x rps':>7}")
    d50, _, drps = rows["direct"]
    for name, (p50, p99, rps) in rows.items():
        print(f"{name:<10} {p50:8.2f} {p99:8.2f} {rps:8.0f} {p50 - d50:8.2f} {rps / drps:7.2f}")
    t50, _, trps = rows["tunegate"]
    print(
        f"\ntunegate: +{t50 - d50:.2f} ms at p50 (goal < 2), {trps / drps:.2f}x direct "
        "throughput (goal >= 0.9)"
    )
    if "tunegate-pg" in rows:
        p50, _, rps = rows["tunegate-pg"]
        print(
            f"PostgreSQL store: {p50 - t50:+.2f} ms at p50 over SQLite (goal < 0.5), "
            f"{rps / trps:.2f}x its throughput"
        )
    if "litellm" in rows:
        l50, _, lrps = rows["litellm"]
        print(
            f"vs LiteLLM: {(l50 - d50) / max(t50 - d50, 1e-3):.1f}x less added latency, "
            f"{trps / lrps:.2f}x its throughput"
        )


if __name__ == "__main__":
    main()
