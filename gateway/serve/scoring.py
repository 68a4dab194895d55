"""The experiment's own scorer on live answers (`tunegate ab start --scorer`): a request may
carry its reference answer in `metadata.reference`; the gateway strips it before the upstream
sees it, scores the answer (exact, regex, json, tool, as the task eval does) and records the
score as the `scorer` signal of the request's arm. Streamed answers are not scored."""

from __future__ import annotations

import functools
import json
from typing import Any

from gateway.evaluate.scorers import Scorer, get_scorer
from gateway.journal.experiments import Experiment


def take_reference(body: dict[str, Any]) -> tuple[dict[str, Any], str | None]:
    """The body as the upstream gets it (without `metadata.reference`), and the reference."""
    meta = body.get("metadata")
    if not isinstance(meta, dict) or "reference" not in meta:
        return body, None
    rest = {k: v for k, v in meta.items() if k != "reference"}
    out = {k: v for k, v in body.items() if k != "metadata"}
    if rest:
        out["metadata"] = rest
    ref = meta["reference"]
    return out, ref if isinstance(ref, str) else json.dumps(ref)


def answer_of(content: bytes) -> str | None:
    """A completion's text (its tool calls as JSON, as the task eval scores them)."""
    try:
        choice = json.loads(content)["choices"][0]
    except (ValueError, KeyError, IndexError, TypeError):
        return None
    message = choice.get("message") if isinstance(choice, dict) else None
    if isinstance(message, dict):
        if message.get("tool_calls"):
            return json.dumps({"tool_calls": message["tool_calls"]})
        return str(message.get("content") or "")
    text = choice.get("text") if isinstance(choice, dict) else None
    return text if isinstance(text, str) else None


@functools.lru_cache(maxsize=64)
def _scorer(name: str, pattern: str | None) -> Scorer:
    return get_scorer(name, pattern=pattern)


def score(exp: Experiment, content: Any, reference: str | None) -> float | None:
    """The experiment's score of an answer against the request's reference (None: nothing
    to score: no scorer, no reference, a streamed answer, or a body that is no completion)."""
    how = exp.settings.get("scorer")
    if not how or reference is None or not isinstance(content, bytes):
        return None
    answer = answer_of(content)
    if answer is None:
        return None
    return float(_scorer(how["name"], how.get("pattern"))(answer, reference))
