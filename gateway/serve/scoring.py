"""What an A/B experiment keeps of an answered request.

The scorer (`tunegate ab start --scorer`): a request may carry its reference answer in
`metadata.reference`; the gateway strips it before the upstream sees it, scores the answer
(exact, regex, json, tool, as the task eval does) and records the score as the `scorer` signal
of the request's arm. Streamed answers are not scored. Bodies (`--log-bodies`): the prompt and
the answer, redacted (`gateway.util.retry.redact`, no key-like strings), only for experiments
that asked, kept for their retention period and deletable (`tunegate ab forget`).
"""

from __future__ import annotations

import functools
import json
from typing import Any

from gateway.evaluate.scorers import Scorer, get_scorer
from gateway.journal.experiments import Experiment, Experiments


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


def observe(
    store: Experiments,
    exp: Experiment,
    body: dict[str, Any],
    content: Any,
    reference: str | None,
    request_id: str,
    arm: str,
) -> None:
    """Score the answer and keep the body, as the experiment asks, in a worker thread: the
    caller is on the request path (or the shadow worker) and never waits for the journal."""
    import asyncio

    found = score(exp, content, reference)
    keep = bool(exp.settings.get("log_bodies"))
    if found is None and not keep:
        return

    def write() -> None:
        if found is not None:
            store.add_feedback(request_id, found, "scorer", None)
        if keep:
            from gateway.util.retry import redact

            prompt = redact(json.dumps(body.get("messages") or body.get("prompt")))
            answer = answer_of(content) if isinstance(content, bytes) else None
            store.add_body(exp, request_id, arm, prompt, redact(answer) if answer else None)

    asyncio.get_running_loop().run_in_executor(None, write)
