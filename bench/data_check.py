"""`data check` throughput on 100,000 generated chat examples of ~300 tokens.

Runs exact + near dedup and token statistics with the approximate counter, and reports
examples/second and peak RSS, next to a reference pass that only parses the JSONL (json.loads
per line), the floor any checker pays. Target: >= 5,000 examples/s and < 1 GB on 2 cores.
Not a timed test.

    python bench/data_check.py [--examples 100000]
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

WORDS = [
    "tool",
    "drill",
    "saw",
    "ladder",
    "sander",
    "bench",
    "clamp",
    "vise",
    "chisel",
    "plane",
    "router",
    "battery",
    "blade",
    "glue",
    "wood",
    "metal",
    "paint",
    "brush",
    "screw",
    "nail",
    "hinge",
    "level",
    "tape",
    "measure",
    "square",
    "file",
    "rasp",
    "mallet",
    "hammer",
]


def generate(path: Path, n: int, seed: int = 0) -> None:
    rng = random.Random(seed)
    last: tuple[str, str] | None = None
    with path.open("w") as fh:
        for i in range(n):
            q = " ".join(rng.choices(WORDS, k=60))
            a = " ".join(rng.choices(WORDS, k=170))
            if i % 50 == 1 and last:  # sprinkle duplicates so dedup has work
                q, a = last
            last = (q, a)
            fh.write(
                json.dumps(
                    {
                        "messages": [
                            {"role": "user", "content": q},
                            {"role": "assistant", "content": a},
                        ]
                    }
                )
                + "\n"
            )


def run_check(path: Path) -> None:
    from gateway.data.checker import check

    report = check(path)
    print(
        json.dumps(
            {
                "n": len(report.loaded.examples),
                "exact_groups": len(report.exact),
                "near_groups": len(report.near),
            }
        )
    )


def run_parse(path: Path) -> None:
    with path.open() as fh:
        n = sum(1 for line in fh if json.loads(line))
    print(json.dumps({"n": n}))


def measure(mode: str, path: Path) -> tuple[float, float, str]:
    start = time.perf_counter()
    out = subprocess.run(
        [sys.executable, __file__, "--child", mode, str(path)],
        capture_output=True,
        text=True,
        check=True,
    )
    elapsed = time.perf_counter() - start
    rss_gb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024 / 1e9
    return elapsed, rss_gb, out.stdout.strip()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--examples", type=int, default=100_000)
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        (run_check if args.child[0] == "check" else run_parse)(Path(args.child[1]))
        return
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.jsonl"
        generate(path, args.examples)
        parse_s, _, _ = measure("parse", path)
        check_s, rss, detail = measure("check", path)
    rate = args.examples / check_s
    print(f"examples: {args.examples:,}  ({detail})")
    print(f"parse only (reference): {parse_s:7.1f} s  {args.examples / parse_s:10,.0f} ex/s")
    print(
        f"tunegate data check:    {check_s:7.1f} s  {rate:10,.0f} ex/s  ({check_s / parse_s:.1f}x the parse floor)"
    )
    print(f"peak RSS: {rss:.2f} GB")
    print(
        f"target >= 5,000 ex/s: {'met' if rate >= 5000 else 'NOT met'}; target < 1 GB: {'met' if rss < 1 else 'NOT met'}"
    )


if __name__ == "__main__":
    main()
