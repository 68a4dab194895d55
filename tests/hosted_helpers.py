"""Job files for the hosted-training tests: small SFT and DPO datasets and a job.yaml."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

SECRET = "sk-tunegate-test-SECRET-0123456789abcdef"


def chats(n: int, seed: int = 0) -> list[dict]:
    return [
        {
            "messages": [
                {"role": "system", "content": "You answer for Lumen & Lathe, a tool library."},
                {"role": "user", "content": f"Can I borrow drill number {i + seed}?"},
                {"role": "assistant", "content": f"Yes: drill {i + seed} is on shelf {i % 7}."},
            ]
        }
        for i in range(n)
    ]


def preferences(n: int, seed: int = 0) -> list[dict]:
    return [
        {
            "prompt": [{"role": "user", "content": f"How long can I keep saw {i + seed}?"}],
            "chosen": [
                {"role": "assistant", "content": f"Saw {i + seed} is yours for seven days."}
            ],
            "rejected": [{"role": "assistant", "content": "Whatever."}],
        }
        for i in range(n)
    ]


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def job_file(tmp_path: Path, base: str, objective: str = "sft", n: int = 12, **extra) -> Path:
    rows = preferences(n) if objective == "dpo" else chats(n)
    write_jsonl(tmp_path / "train.jsonl", rows)
    spec = {
        "name": "brand-voice",
        "base_model": base,
        "train": "train.jsonl",
        "objective": objective,
        "training": {"epochs": 2},
        **extra,
    }
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path
