"""What local jobs measured on this machine, so later plans start from reality.

Each finished local job appends its tokens/s and peak memory to `$TUNEGATE_HOME/measured.json`;
`tunegate plan` prices the same backend, hardware, base model and method from the latest one.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from gateway.catalog import tunegate_home


def _path() -> Path:
    return tunegate_home() / "measured.json"


def _load() -> list[dict[str, Any]]:
    try:
        return json.loads(_path().read_text())
    except (OSError, ValueError):
        return []


def record(rec: Any, actual: dict[str, Any]) -> None:
    """Remember one finished local job's throughput (once per job)."""
    rows = [r for r in _load() if r.get("job_id") != rec.id]
    rows.append(
        {
            "job_id": rec.id,
            "provider": rec.provider,
            "hardware": (rec.offer or {}).get("hardware"),
            "model": rec.base_model,
            "method": rec.spec.get("method"),
            "tokens_per_s": actual["tokens_per_s"],
            "peak_memory_gb": actual.get("peak_memory_gb"),
            "at": time.strftime("%Y-%m-%d"),
        }
    )
    path = _path()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(rows[-200:], indent=1))
    os.replace(tmp, path)


def lookup(provider: str, hardware: str, model: str, method: str) -> dict[str, Any] | None:
    """The latest measurement for exactly this backend, hardware, base model and method."""
    for row in reversed(_load()):
        if (row.get("provider"), row.get("hardware"), row.get("model"), row.get("method")) == (
            provider,
            hardware,
            model,
            method,
        ):
            return row
    return None
