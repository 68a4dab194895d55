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


def save(store: ServeStore, rid: str, model: str, key_id: str | None, messages: list) -> None:
    now = time.time()
    with store.transaction() as db:
        db.execute(
            "INSERT OR REPLACE INTO responses (id, model, key_id, messages_json, created_at)"
            " VALUES (?,?,?,?,?)",
            (rid, model, key_id, json.dumps(messages), now),
        )
        db.execute("DELETE FROM responses WHERE created_at < ?", (now - RETENTION_S,))


def conversation(store: ServeStore, rid: str, key_id: str | None) -> list[dict[str, Any]] | None:
    """The stored conversation of `rid`, if this key (or, without keys, anyone) made it."""
    rows = store._read("SELECT key_id, messages_json FROM responses WHERE id = ?", (rid,))
    if not rows or (rows[0]["key_id"] or None) != (key_id or None):
        return None
    return list(json.loads(rows[0]["messages_json"]))
