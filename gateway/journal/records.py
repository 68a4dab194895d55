"""The job types every layer shares: what a provider's poll learned, its events, a finished
job's artifact, state normalization and the job directory.

They live in the core, not in `gateway.facade.jobs` (the handle), so that providers and exporters
import them without importing the facade that imports them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gateway.catalog import tunegate_home


@dataclass
class RemoteEvent:
    """One provider event; `id` is stable across polls so the journal stores it once."""

    id: str
    message: str
    ts: float | None = None
    level: str = "info"
    step: int | None = None
    data: dict[str, Any] | None = None


@dataclass
class JobUpdate:
    """What one poll of a provider learned."""

    raw_state: str
    state: str
    step: int | None = None
    total_steps: int | None = None
    loss: float | None = None
    events: list[RemoteEvent] = field(default_factory=list)
    actual: dict[str, Any] | None = None  # billed tokens and cost, once the provider says
    error: str | None = None
    remote: dict[str, Any] = field(default_factory=dict)  # output model names, checkpoints
    warnings: list[str] = field(default_factory=list)  # e.g. an unknown state, mapped


@dataclass(frozen=True)
class Artifact:
    """What a finished job produced: a local directory or a hosted model id."""

    id: str
    job_id: str
    kind: str  # hosted-model | adapter | merged
    uri: str
    sha256: str | None = None
    bytes: int | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Artifact:
        """An artifact as the journal stores it (`Journal.artifacts()` rows)."""
        return cls(
            row["id"],
            row["job_id"],
            row["kind"],
            row["uri"],
            row["sha256"],
            row["bytes"],
            row["meta"] or {},
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "job_id": self.job_id,
            "kind": self.kind,
            "uri": self.uri,
            "sha256": self.sha256,
            "bytes": self.bytes,
            **({"meta": self.meta} if self.meta else {}),
        }


_NEAREST = (
    ("cancel", "cancelled"),
    ("fail", "failed"),
    ("error", "failed"),
    ("succe", "succeeded"),
    ("complete", "succeeded"),
    ("done", "succeeded"),
    ("queue", "queued"),
    ("pend", "queued"),
    ("valid", "queued"),
    ("upload", "running"),
    ("run", "running"),
    ("train", "running"),
)


def normalize_state(raw: str | None, known: dict[str, str]) -> tuple[str, str | None]:
    """(normalized state, warning) for a provider's state; unknown ones map to the nearest."""
    text = str(raw or "").strip()
    low = text.lower()
    if low in known:
        return known[low], None
    nearest = next((state for hint, state in _NEAREST if hint in low), "running")
    return nearest, f"unknown provider state {text!r}, treated as {nearest}"


def job_dir(job_id: str) -> Path:
    """Where a job's converted data, downloads and artifacts live."""
    path = tunegate_home() / "jobs" / job_id
    path.mkdir(parents=True, exist_ok=True)
    return path
