"""How fast `tunegate --help` and `tunegate plan` answer, and what importing `gateway` costs.

Not a timed test: it prints medians over several runs and ratios against references run side by
side: a bare interpreter start, and (when torch is installed) an interpreter that imports torch,
which is what a CLI pays when its start-up imports an ML framework. Target: plan < 0.5 s.

    python bench/plan_speed.py [--runs 7]
"""

from __future__ import annotations

import argparse
import importlib.util
import re
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PLAN = [
    "plan",
    "--base",
    "meta-llama/Llama-3.1-8B-Instruct",
    "--examples",
    "5000",
    "--avg-tokens",
    "600",
    "--epochs",
    "2",
    "--method",
    "qlora",
    "--json",
]


def _tunegate() -> list[str]:
    exe = Path(sys.executable).parent / "tunegate"
    if exe.exists():
        return [str(exe)]
    found = shutil.which("tunegate")
    return [found] if found else [sys.executable, "-m", "cli.main"]


def median_seconds(cmd: list[str], runs: int) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(
            cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True
        )
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def import_ms(module: str) -> float:
    out = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", f"import {module}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stderr
    pattern = re.compile(rf"\|\s*(\d+)\s*\|\s*{re.escape(module)}\s*$")
    values = [int(m.group(1)) for line in out.splitlines() if (m := pattern.search(line))]
    return values[-1] / 1000 if values else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    tg = _tunegate()
    bare = median_seconds([sys.executable, "-c", "pass"], args.runs)
    rows = [("python -c pass (reference)", bare)]
    rows.append(("tunegate --help", median_seconds([*tg, "--help"], args.runs)))
    rows.append(("tunegate plan ... --json", median_seconds([*tg, *PLAN], args.runs)))
    if importlib.util.find_spec("torch"):
        rows.append(
            (
                "python -c 'import torch' (reference)",
                median_seconds([sys.executable, "-c", "import torch"], 3),
            )
        )
    print(f"{'command':42s} {'median s':>9s} {'x bare python':>14s}")
    for name, seconds in rows:
        print(f"{name:42s} {seconds:9.3f} {seconds / bare:14.1f}")
    plan_s = rows[2][1]
    print(
        f"\ncumulative import time of gateway: {import_ms('gateway.facade.plan'):.0f} ms (gateway.facade.plan, everything plan needs)"
    )
    print(f"plan target < 0.5 s: {'met' if plan_s < 0.5 else 'NOT met'} ({plan_s:.3f} s)")


if __name__ == "__main__":
    main()
