"""`export.json`, the record every export writes beside its files, read in one place.

The pipeline writes it (`exporters.pipeline`): what was exported (`kind`), from which base and
adapter (`source`), with which checks passed and the SHA-256 of each file. Everything that later
asks "what is this folder?" (is it an MLX export, which base does it derive from) reads it
through `read`, so the format has one reader to change.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

NAME = "export.json"


@dataclass(frozen=True)
class ExportRecord:
    path: Path  # the export.json itself
    kind: str | None  # merged | gguf | mlx (None in a record that predates the field)
    base: str | None  # the base model the export derives from
    adapter: str | None
    job_id: str | None
    data: dict[str, Any] = field(default_factory=dict, repr=False)  # the whole record


def read(where: Path | str) -> ExportRecord | None:
    """The record of an export folder, or of the folder holding an exported file (a GGUF);
    None where there is none or it cannot be read (a folder that is no export)."""
    where = Path(where)
    candidate = where / NAME if where.is_dir() else where.parent / NAME
    if not candidate.is_file():
        return None
    try:
        data = json.loads(candidate.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict):
        return None
    source = data.get("source") or {}
    return ExportRecord(
        candidate,
        data.get("kind"),
        str(source["base"]) if source.get("base") else None,
        source.get("adapter"),
        source.get("job_id"),
        data,
    )
