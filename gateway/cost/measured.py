"""What local jobs measured on this machine, so later plans start from reality.

Each finished local job appends its tokens/s and peak memory to `$TUNEGATE_HOME/measured.json`,
beside the throughput the model predicted for it. `tunegate plan` prices the same backend,
hardware, base model and method from the latest measurement; a model of the same size class
(the same backend, hardware and method) gets the model's estimate scaled by how far off it was
for the measured one: a CPU whose real speed the FLOPs model misjudges is corrected once, for
every model of that size, not once per model.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gateway.catalog import tunegate_home

# Upper bounds (billions of parameters) of the size classes: about 2x apart, so the models of
# one class share their matrix shapes' regime (small ones are overhead-bound, large ones not)
SIZE_CLASSES = (0.5, 1.0, 2.0, 4.0, 9.0, 16.0, 36.0, 80.0)


def size_class(params_b: float | None) -> str | None:
    """`≤0.5B`, `≤1B`, ..., `>80B`, or None when the size is not known."""
    if not params_b:
        return None
    for bound in SIZE_CLASSES:
        if params_b <= bound:
            return f"≤{bound:g}B"
    return f">{SIZE_CLASSES[-1]:g}B"


def _path() -> Path:
    return tunegate_home() / "measured.json"


def _load() -> list[dict[str, Any]]:
    try:
        return json.loads(_path().read_text())
    except (OSError, ValueError):
        return []


def record(rec: Any, actual: dict[str, Any]) -> None:
    """Remember one finished local job's throughput (once per job), beside what the model
    predicted for it (the modelled figure, not one a previous measurement already replaced)."""
    offer = rec.offer or {}
    modelled = offer.get("modelled_tokens_per_second") or offer.get("tokens_per_second") or {}
    rows = [r for r in _load() if r.get("job_id") != rec.id]
    rows.append(
        {
            "job_id": rec.id,
            "provider": rec.provider,
            "hardware": offer.get("hardware"),
            "model": rec.base_model,
            "params_b": offer.get("model_params_b"),
            "method": rec.spec.get("method"),
            "tokens_per_s": actual["tokens_per_s"],
            "estimated_tokens_per_s": modelled.get("likely"),
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


@dataclass(frozen=True)
class Correction:
    """How far the model was off for a measured job of the same size class."""

    factor: float  # measured / modelled tokens per second
    row: dict[str, Any]
    size: str


def correction(
    provider: str, hardware: str, method: str, params_b: float | None
) -> Correction | None:
    """The latest measured job of this backend, hardware, method and size class that recorded
    what the model predicted for it, as a factor to scale the model's estimate by."""
    size = size_class(params_b)
    if size is None:
        return None
    for row in reversed(_load()):
        if (row.get("provider"), row.get("hardware"), row.get("method")) != (
            provider,
            hardware,
            method,
        ):
            continue
        modelled = row.get("estimated_tokens_per_s")
        if size_class(row.get("params_b")) == size and modelled and row.get("tokens_per_s"):
            return Correction(row["tokens_per_s"] / modelled, row, size)
    return None
