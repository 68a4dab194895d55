"""Deployments as the journal keeps them: the record type, lookup by id, prefix or name, and
the reply type of a chat with one. Core types: the deploy targets (`exporters.deploy`) and the
facade (`gateway.facade.deploy`) both use them, so neither imports the other for them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from gateway.errors import JobError
from gateway.journal import Journal


@dataclass(frozen=True)
class Deployment:
    id: str
    target: str
    name: str
    endpoint: str | None
    state: str  # live | removed | failed
    artifact_id: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    created_at: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "target": self.target,
            "name": self.name,
            "endpoint": self.endpoint,
            "state": self.state,
            "artifact_id": self.artifact_id,
            "created_at": self.created_at,
            "meta": self.meta,
        }


@dataclass(frozen=True)
class ChatReply:
    text: str
    finish_reason: str | None  # "stop" when the model ended its turn
    deployment: str
    raw: dict[str, Any] = field(default_factory=dict)
    # tokens as the target counted them, normalized by the target that knows its API's shape
    # (None: read OpenAI's `usage` in `raw`)
    prompt_tokens: int | None = None
    completion_tokens: int | None = None

    def tokens(self) -> tuple[int, int]:
        """(prompt, completion) tokens of this answer, whatever API gave it."""
        if self.prompt_tokens is not None or self.completion_tokens is not None:
            return int(self.prompt_tokens or 0), int(self.completion_tokens or 0)
        usage = self.raw.get("usage") or {}
        return int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0)

    def to_json(self) -> dict[str, Any]:
        return {
            "text": self.text,
            "finish_reason": self.finish_reason,
            "deployment": self.deployment,
        }


def _row(row: dict[str, Any]) -> Deployment:
    return Deployment(
        row["id"],
        row["target"],
        row["name"],
        row["endpoint"],
        row["state"],
        row["artifact_id"],
        row["meta"] or {},
        row["created_at"],
    )


def deployments(journal: Journal | None = None, *, all: bool = False) -> list[Deployment]:
    """Every deployment, newest first (removed ones only with `all`)."""
    rows = [_row(r) for r in (journal or Journal()).deployments()]
    return [d for d in reversed(rows) if all or d.state != "removed"]


def get_deployment(ref: str, journal: Journal | None = None) -> Deployment:
    """A deployment by id, unique id prefix, or name (the newest live one of that name)."""
    rows = deployments(journal, all=True)
    exact = [d for d in rows if d.id == ref] or [
        d for d in rows if d.name == ref and d.state == "live"
    ]
    found = exact or [d for d in rows if d.id.startswith(ref)]
    if len(found) == 1 or (exact and found):
        return found[0]
    if not found:
        raise JobError(f"no deployment '{ref}'", fix="`tunegate deployments` lists them")
    raise JobError(f"'{ref}' matches more than one deployment", fix="give more of the id")
