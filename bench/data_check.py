"""`data check` throughput and near-duplicate quality on 100,000 generated chat examples.

The file holds ~300-token random examples, exact copies, planted near duplicates at known
similarities (a copy with some words replaced: its exact word-trigram Jaccard with the original
is computed here in plain Python, independent of tunegate's hashing) and 100 distinct short
templated pairs that must never be grouped. Reports examples/second and peak RSS next to a
pass that only parses the JSONL (the floor any checker pays) and datasketch (the reference
tool) on the same trigrams, and the precision of the confirmed pairs and the recall of the
planted pairs at threshold + 0.05, both against exact Jaccard.
Targets: >= 5,000 examples/s, < 1 GB on 2 cores; precision 1.0, recall >= 0.95. Not a timed test.

    python bench/data_check.py [--examples 100000] [--threshold 0.8]
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


def _chat(q: str, a: str) -> str:
    turns = [{"role": "user", "content": q}, {"role": "assistant", "content": a}]
    return json.dumps({"messages": turns}) + "\n"


def generate(path: Path, n: int, seed: int = 0) -> None:
    """`n` lines: random examples, every 50th an exact copy, every 40th a near copy of an
    earlier example with 1-40 of its 230 words replaced, and 200 short templated lines."""
    rng = random.Random(seed)
    kept: list[tuple[str, list[str]]] = []
    planted: list[tuple[int, int]] = []
    with path.open("w") as fh:
        for i in range(n - 200):
            q = " ".join(rng.choices(WORDS, k=60))
            a = rng.choices(WORDS, k=170)
            if i % 50 == 1 and kept:  # exact copies so dedup has work
                q, a = kept[-1]
            elif i % 40 == 3 and kept:
                src = rng.randrange(len(kept))
                q, a = kept[src][0], list(kept[src][1])
                for pos in rng.sample(range(len(a)), rng.randint(1, 40)):
                    a[pos] = rng.choice([*WORDS, f"zz{rng.randrange(10**6)}"])
                planted.append((src + 1, i + 1))
            kept.append((q, a))
            fh.write(_chat(q, " ".join(a)))
        for k in range(100):  # distinct short pairs: true Jaccard ~0.43, never duplicates
            fh.write(_chat(f"Name the capital of country {k}.", f"City {k}."))
            fh.write(_chat(f"Name the capital of country {k + 100}.", f"City {k + 100}."))
    path.with_suffix(".planted.json").write_text(json.dumps(planted))


def _trigrams(text: str) -> set[tuple[str, ...]]:
    from gateway.data.hygiene import words

    ws = words(text)
    return {tuple(ws[i : i + 3]) for i in range(len(ws) - 2)} if len(ws) >= 3 else {tuple(ws)}


def _jaccard(a: set, b: set) -> float:
    return len(a & b) / len(a | b) if a | b else 1.0


def run_quality(path: Path, threshold: float) -> None:
    """Precision of the confirmed pairs and recall of the planted ones, on exact Jaccard."""
    from gateway.data.formats import load
    from gateway.data.hygiene import fingerprints

    examples = {ex.line: ex for ex in load(path).examples}
    prints = fingerprints(examples.values())
    grams = {}

    def sets(line: int) -> set:
        if line not in grams:
            grams[line] = _trigrams(examples[line].all_text())
        return grams[line]

    pairs = prints.near_pairs(threshold)
    exact_of_pairs = [_jaccard(sets(a), sets(b)) for a, b in pairs]
    group_of = {line: k for k, g in enumerate(prints.near_groups(threshold)) for line in g}
    planted = [tuple(p) for p in json.loads(path.with_suffix(".planted.json").read_text())]
    above = [(a, b) for a, b in planted if _jaccard(sets(a), sets(b)) >= threshold + 0.05]
    found = [p for p in above if group_of.get(p[0], -1) == group_of.get(p[1], -2)]
    short = set(range(len(examples) - 199, len(examples) + 1))
    print(
        json.dumps(
            {
                "pairs": len(pairs),
                "precision": sum(j >= threshold for j in exact_of_pairs) / max(1, len(pairs)),
                "planted_above": len(above),
                "recall": len(found) / max(1, len(above)),
                "short_grouped": sum(1 for line in short if line in group_of),
            }
        )
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


def measure(mode: str, path: Path, *extra: str) -> tuple[float, float, str]:
    start = time.perf_counter()
    out = subprocess.run(
        [sys.executable, __file__, "--child", mode, str(path), *extra],
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
    parser.add_argument("--threshold", type=float, default=0.8)
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        modes = {
            "check": run_check,
            "parse": run_parse,
            "near": run_near,
            "datasketch": run_datasketch,
        }
        if args.child[0] == "quality":
            run_quality(Path(args.child[1]), float(args.child[2]))
        else:
            modes[args.child[0]](Path(args.child[1]))
        return
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.jsonl"
        generate(path, args.examples)
        parse_s, _, _ = measure("parse", path)
        check_s, rss, detail = measure("check", path)
        near_s, _, _ = measure("near", path)
        quality = json.loads(measure("quality", path, str(args.threshold))[2])
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
    q = quality
    print(
        f"near duplicates at {args.threshold}: {q['pairs']} confirmed pairs, precision "
        f"{q['precision']:.3f} (exact Jaccard >= {args.threshold}); recall {q['recall']:.3f} of "
        f"{q['planted_above']} planted pairs >= {args.threshold + 0.05:.2f}; "
        f"{q['short_grouped']} of 200 distinct short lines grouped"
    )
    print(
        f"target precision 1.0: {'met' if q['precision'] == 1.0 else 'NOT met'}; "
        f"target recall >= 0.95: {'met' if q['recall'] >= 0.95 else 'NOT met'}"
    )
    print(
        f"target >= 5,000 ex/s: {'met' if rate >= 5000 else 'NOT met'}; target < 1 GB: {'met' if rss < 1 else 'NOT met'}"
    )


if __name__ == "__main__":
    main()
