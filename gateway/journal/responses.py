"""Conversations of the Responses API (`/v1/responses` on `tunegate serve`): each stored
response keeps the whole conversation up to and including its answer, so a request naming it
as `previous_response_id` continues from there on any upstream. Rows older than the retention
(30 days, as OpenAI keeps stored responses by default) are removed as new ones are written.
"""

from __future__ import annotations

import json
import time
from typing import Any

from gateway.journal.serving import ServeStore

RETENTION_S = 30 * 86_400


def save(
    store: ServeStore,
    rid: str,
    model: str,
    key_id: str | None,
    messages: list,
    response: dict[str, Any],
) -> None:
    now = time.time()
    with store.transaction() as db:
        db.execute(
            "INSERT INTO responses (id, model, key_id, messages_json, response_json,"
            " created_at) VALUES (?,?,?,?,?,?) ON CONFLICT (id) DO UPDATE SET"
            " model = excluded.model, key_id = excluded.key_id,"
            " messages_json = excluded.messages_json, response_json = excluded.response_json,"
            " created_at = excluded.created_at",
            (rid, model, key_id, json.dumps(messages), json.dumps(response), now),
        )
        db.execute("DELETE FROM responses WHERE created_at < ?", (now - RETENTION_S,))


def _mine(store: ServeStore, rid: str, key_id: str | None) -> Any:
    """The row of `rid`, if this key (or, without keys, anyone) made it."""
    rows = store._read("SELECT * FROM responses WHERE id = ?", (rid,))
    if not rows or (rows[0]["key_id"] or None) != (key_id or None):
        return None
    return rows[0]


def conversation(store: ServeStore, rid: str, key_id: str | None) -> list[dict[str, Any]] | None:
    """The stored conversation of `rid` up to and including its answer."""
    row = _mine(store, rid, key_id)
    return list(json.loads(row["messages_json"])) if row is not None else None


def response(store: ServeStore, rid: str, key_id: str | None) -> dict[str, Any] | None:
    """The stored `response` object (`GET /v1/responses/{id}`)."""
    row = _mine(store, rid, key_id)
    if row is None or not row["response_json"]:
        return None
    return dict(json.loads(row["response_json"]))


def delete(store: ServeStore, rid: str, key_id: str | None) -> bool:
    if _mine(store, rid, key_id) is None:
        return False
    with store.transaction() as db:
        db.execute("DELETE FROM responses WHERE id = ?", (rid,))
    return True
