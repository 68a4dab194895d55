"""Job files for the tests: small SFT and DPO datasets and a job.yaml, for a hosted base
(`job_file`) or a tiny local model trained for real (`local_job`)."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from gateway.spec import JobSpec
from tests.fakes._server import SECRET as SECRET  # the key every leak test looks for


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


def kto_rows(n: int, seed: int = 0) -> list[dict]:
    """Unpaired answers: the house answer labelled desirable, a curt one undesirable."""
    rows = []
    for i in range(n):
        good = i % 2 == 0
        answer = f"Saw {i + seed} is yours for seven days." if good else "Whatever."
        rows.append(
            {"prompt": f"How long can I keep saw {i + seed}?", "completion": answer, "label": good}
        )
    return rows


def rows_for(objective: str, n: int, seed: int = 0) -> list[dict]:
    if objective in ("dpo", "orpo"):
        return preferences(n, seed)
    return kto_rows(n, seed) if objective == "kto" else chats(n, seed)


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def job_file(tmp_path: Path, base: str, objective: str = "sft", n: int = 12, **extra) -> Path:
    write_jsonl(tmp_path / "train.jsonl", rows_for(objective, n))
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


def local_job(
    tmp_path: Path,
    model: Path,
    objective="sft",
    method="lora",
    n=48,
    valid=8,
    rewards: list[str] | None = None,
    **training,
):
    write_jsonl(tmp_path / "train.jsonl", rows_for(objective, n))
    spec = {
        "name": "tiny",
        "base_model": str(model),
        "train": "train.jsonl",
        "method": method,
        "objective": objective,
        "lora": {"rank": 8, "alpha": 16},
        "training": {
            "epochs": 2,
            "batch_size": 4,
            "grad_accum": 1,
            "learning_rate": 5e-3,
            "max_seq_len": 128,
            **training,
        },
    }
    if rewards:
        spec["rewards"] = rewards
    if valid:
        write_jsonl(tmp_path / "valid.jsonl", rows_for(objective, valid, 1000))
        spec["validation"] = "valid.jsonl"
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(spec))
    return JobSpec.from_yaml(path)
