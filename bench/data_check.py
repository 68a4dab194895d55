"""`data check` throughput on 100,000 generated chat examples of ~300 tokens.

Runs exact + near dedup and token statistics with the approximate counter, and reports
examples/second and peak RSS, next to a pass that only parses the JSONL (json.loads per line, the
floor any checker pays) and the near-duplicate step run with datasketch (the reference tool)
side by side with tunegate's own. Target: >= 5,000 examples/s and < 1 GB on 2 cores.
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


def run_near(path: Path) -> None:
    """tunegate's near-duplicate step alone (one-permutation MinHash, numpy LSH)."""
    from gateway.data.formats import load
    from gateway.data.hygiene import fingerprints

    groups = fingerprints(load(path).examples).near_groups(0.8)
    print(json.dumps({"near_groups": len(groups)}))


def run_datasketch(path: Path) -> None:
    """The reference: datasketch MinHash + MinHashLSH on the same word trigrams."""
    from datasketch import MinHash, MinHashLSH

    from gateway.data.formats import load
    from gateway.data.hygiene import words

    lsh = MinHashLSH(threshold=0.8, num_perm=64)
    n_pairs = 0
    for ex in load(path).examples:
        ws = words(ex.all_text())
        mh = MinHash(num_perm=64)
        mh.update_batch([" ".join(ws[i : i + 3]).encode() for i in range(max(1, len(ws) - 2))])
        n_pairs += len(lsh.query(mh))
        lsh.insert(ex.line, mh)
    print(json.dumps({"candidate_pairs": n_pairs}))


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
    parser.add_argument(
        "--no-datasketch", action="store_true", help="skip the datasketch reference run"
    )
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        modes = {
            "check": run_check,
            "parse": run_parse,
            "near": run_near,
            "datasketch": run_datasketch,
        }
        modes[args.child[0]](Path(args.child[1]))
        return
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.jsonl"
        generate(path, args.examples)
        parse_s, _, _ = measure("parse", path)
        check_s, rss, detail = measure("check", path)
        near_s, _, _ = measure("near", path)
        ref_s = None if args.no_datasketch else measure("datasketch", path)[0]
    rate = args.examples / check_s
    print(f"examples: {args.examples:,}  ({detail})")
    print(f"parse only (reference): {parse_s:7.1f} s  {args.examples / parse_s:10,.0f} ex/s")
    print(
        f"tunegate data check:    {check_s:7.1f} s  {rate:10,.0f} ex/s  ({check_s / parse_s:.1f}x the parse floor)"
    )
    print(f"near-dup step alone:    {near_s:7.1f} s  (load + signatures + LSH)")
    if ref_s is not None:
        print(
            f"datasketch reference:   {ref_s:7.1f} s  (same trigrams, MinHash + MinHashLSH): "
            f"tunegate is {ref_s / near_s:.1f}x faster"
        )
    print(f"peak RSS: {rss:.2f} GB")
    print(
        f"target >= 5,000 ex/s: {'met' if rate >= 5000 else 'NOT met'}; target < 1 GB: {'met' if rss < 1 else 'NOT met'}"
    )


if __name__ == "__main__":
    main()
