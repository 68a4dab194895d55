"""Which arm of an alias's experiment answers a request (sticky per end user), and the
feedback applications send about an answer.

The subject is the request's `user` field, else the API key, else the client's address. Its
hash with the experiment's id gives a number in [0, 1); below the candidate's share it gets the
candidate. The same user always lands on the same arm (no flipping models mid-conversation),
and raising the share only moves users from the incumbent to the candidate, never back.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

from gateway.journal.experiments import Experiment

REQUEST_ID = re.compile(r"req-[0-9a-f]{32}")  # the x-request-id the gateway returns


def subject(user: object, key_id: str | None, client: str | None) -> str:
    if isinstance(user, str) and user:
        return "user:" + user
    if key_id:
        return "key:" + key_id
    return "addr:" + (client or "unknown")


def position(experiment_id: str, who: str) -> float:
    """A fixed point in [0, 1) for this subject in this experiment."""
    digest = hashlib.sha256(f"{experiment_id}\0{who}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def arm_of(exp: Experiment, who: str) -> str:
    return "candidate" if position(exp.id, who) < exp.share else "incumbent"


def parse_feedback(body: Any) -> tuple[str, float] | None:
    """`{"request_id": "req-...", "score": 0-1}` or `"thumbs": "up" | "down"` -> (id, score);
    None for anything else."""
    if not isinstance(body, dict):
        return None
    rid, thumbs, score = body.get("request_id"), body.get("thumbs"), body.get("score")
    if not isinstance(rid, str) or not REQUEST_ID.fullmatch(rid):
        return None
    if thumbs in ("up", "down"):
        return rid, 1.0 if thumbs == "up" else 0.0
    if isinstance(score, int | float) and not isinstance(score, bool) and 0 <= score <= 1:
        return rid, float(score)
    return None
