"""One request to one deployment: over HTTP to an OpenAI-compatible upstream (streamed through
event by event, usage read on the way), or through the target's own `chat` for Bedrock.

`Unreachable` means "try the next deployment": the upstream could not be reached, or answered
with an error another deployment may not have (5xx, 429, 401/403, 404). A request the upstream
rejects as malformed (400, 413, 422) is returned as it is: every fallback would reject it too.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import anyio
import httpx

from exporters.deploy import get_deployer
from exporters.deploy.base import with_system
from exporters.deploy.engines import Engines
from gateway.errors import TunegateError
from gateway.serve.registry import Target
from gateway.util.retry import describe

CLIENT_ERRORS = frozenset({400, 413, 422})
PATHS = {"chat": "/chat/completions", "completions": "/completions"}


class Unreachable(Exception):
    """This deployment could not answer; the reason is shown to the user and journaled."""


@dataclass
class Outcome:
    """What the meter records once the answer has been sent (for a stream: when it ends)."""

    status: int
    prompt_tokens: int = 0
    completion_tokens: int = 0
    estimated: bool = False
    error: str | None = None


Done = Callable[[Outcome], None]


def estimate_prompt_tokens(body: dict[str, Any]) -> int:
    """~4 characters a token: only for streams whose upstream reports no usage."""
    return max(1, len(json.dumps(body.get("messages") or body.get("prompt") or "")) // 4)


def _usage(data: Any) -> tuple[int, int] | None:
    usage = data.get("usage") if isinstance(data, dict) else None
    if not isinstance(usage, dict):
        return None
    return int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0)


def _payload(target: Target, body: dict[str, Any], route: str) -> tuple[dict[str, Any], bool]:
    """The body as the upstream needs it: its model name, the deployment's system prompt, and
    `include_usage` on streams (the added usage chunk is not passed on to the client)."""
    payload = dict(body)
    payload["model"] = target.upstream.model  # type: ignore[union-attr]
    # the member's pick in a shared engine, over anything the client sent: a client never
    # chooses another member's adapter
    payload.update(target.upstream.body)  # type: ignore[union-attr]
    if route == "chat" and isinstance(payload.get("messages"), list):
        payload["messages"] = with_system(target.deployment, payload["messages"])
    added = False
    options = payload.get("stream_options") or {}
    if payload.get("stream") and not options.get("include_usage"):
        payload["stream_options"] = {**options, "include_usage": True}
        added = True
    return payload, added


async def via_http(
    client: httpx.AsyncClient,
    engines: Engines,
    target: Target,
    body: dict[str, Any],
    route: str,
    done: Done,
) -> tuple[int, bytes | AsyncIterator[bytes], dict[str, str]]:
    """Send to the upstream; returns (status, body or byte stream, headers) or raises Unreachable."""
    up, dep = target.upstream, target.deployment
    assert up is not None
    engine_key = up.shared or dep.id  # a group's members share one engine
    if up.kind == "engine":
        try:
            base = await engines.url(engine_key, up)
        except TunegateError as exc:
            raise Unreachable(exc.message) from None
    else:
        base = up.base_url
    payload, added_usage = _payload(target, body, route)
    stream = bool(payload.get("stream"))
    request = client.build_request("POST", base + PATHS[route], json=payload, headers=up.headers)
    try:
        try:
            res = await client.send(request, stream=stream)
        except httpx.RemoteProtocolError:
            # a pooled keep-alive connection the upstream had just closed: it sent no answer,
            # so the request never ran there; once more, on a fresh connection
            request = client.build_request(
                "POST", base + PATHS[route], json=payload, headers=up.headers
            )
            res = await client.send(request, stream=stream)
    except httpx.HTTPError as exc:
        if up.kind == "engine":
            engines.failed(engine_key)
        raise Unreachable(f"cannot reach {dep.target} ({describe(exc)})") from None
    if res.status_code >= 400:
        content = await _read(res, up.kind == "engine", engines, dep, engine_key)
        if res.status_code not in CLIENT_ERRORS:
            raise Unreachable(f"{dep.target} answered HTTP {res.status_code}: {_message(content)}")
        done(Outcome(res.status_code, error=_message(content)))
        return res.status_code, content, {"content-type": "application/json"}
    if not stream:
        content = await _read(res, up.kind == "engine", engines, dep, engine_key)
        try:
            counted = _usage(json.loads(content))
        except ValueError:
            counted = None
        prompt, completion = counted or (0, 0)
        done(Outcome(res.status_code, prompt, completion, estimated=counted is None))
        return res.status_code, content, {"content-type": "application/json"}
    events = _relay(res, added_usage, body, done)
    return (
        res.status_code,
        events,
        {"content-type": "text/event-stream", "cache-control": "no-cache"},
    )


async def _read(
    res: httpx.Response, engine: bool, engines: Engines, dep: Any, engine_key: str
) -> bytes:
    """The whole body; an upstream that breaks off mid-answer is Unreachable, like one that
    never answered (the request can still fall back: nothing was sent to the client yet)."""
    try:
        return await res.aread()
    except httpx.HTTPError as exc:
        if engine:
            engines.failed(engine_key)
        raise Unreachable(f"cannot read {dep.target}'s answer ({describe(exc)})") from None
    finally:
        await res.aclose()


async def _relay(
    res: httpx.Response, added_usage: bool, body: dict[str, Any], done: Done
) -> AsyncIterator[bytes]:
    """Pass the upstream's events on as they arrive, reading usage (or counting deltas)."""
    buffer, deltas, usage, error = b"", 0, None, None
    try:
        async for chunk in res.aiter_bytes():
            buffer += chunk.replace(b"\r\n", b"\n")
            while b"\n\n" in buffer:
                event, buffer = buffer.split(b"\n\n", 1)
                if b'"usage"' in event and event.startswith(b"data: {"):
                    data = _event_json(event)
                    found = _usage(data)
                    if found is not None and found != (0, 0):
                        usage = found
                    if added_usage and isinstance(data, dict) and not data.get("choices"):
                        continue  # the usage chunk the client did not ask for
                if b'"content"' in event:
                    deltas += 1
                yield event + b"\n\n"
        if buffer.strip():
            yield buffer
    except httpx.HTTPError as exc:
        error = f"the upstream stream broke: {describe(exc)}"
    finally:
        await res.aclose()
        if usage is None:
            done(Outcome(502 if error else 200, estimate_prompt_tokens(body), deltas, True, error))
        else:
            done(Outcome(502 if error else 200, usage[0], usage[1], error=error))


def _event_json(event: bytes) -> Any:
    try:
        return json.loads(event[6:])
    except ValueError:
        return None


def _message(content: bytes) -> str:
    try:
        data = json.loads(content)
        err = data.get("error") if isinstance(data, dict) else None
        text = err.get("message") if isinstance(err, dict) else (err or data.get("detail"))
        return str(text)[:300] if text else content[:300].decode(errors="replace")
    except (ValueError, AttributeError):
        return content[:300].decode(errors="replace")


async def via_chat(
    target: Target, body: dict[str, Any], route: str, done: Done
) -> tuple[int, bytes | AsyncIterator[bytes], dict[str, str]]:
    """A target without an OpenAI-compatible API (Bedrock): its `chat`, shaped as OpenAI's."""
    dep = target.deployment
    if route != "chat" or not isinstance(body.get("messages"), list):
        done(Outcome(400, error="chat only"))
        return 400, _error_bytes(f"{dep.target} deployments answer chat completions only"), {}
    limit = int(body.get("max_completion_tokens") or body.get("max_tokens") or 256)
    messages = with_system(dep, body["messages"])
    try:
        reply = await anyio.to_thread.run_sync(get_deployer(dep.target).chat, dep, messages, limit)
    except TunegateError as exc:
        raise Unreachable(exc.message) from None
    prompt, completion = reply.tokens()  # normalized by the target
    done(Outcome(200, prompt, completion))
    rid, created, model = f"chatcmpl-{dep.id}-{time.time_ns()}", int(time.time()), body["model"]
    usage_json = {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }
    if not body.get("stream"):
        answer = {
            "id": rid,
            "object": "chat.completion",
            "created": created,
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": reply.text},
                    "finish_reason": reply.finish_reason or "stop",
                }
            ],
            "usage": usage_json,
        }
        return 200, json.dumps(answer).encode(), {"content-type": "application/json"}
    head = {"id": rid, "object": "chat.completion.chunk", "created": created, "model": model}
    deltas = [
        {"role": "assistant", "content": ""},
        {"content": reply.text},
    ]
    chunks = [
        {**head, "choices": [{"index": 0, "delta": d, "finish_reason": None}]} for d in deltas
    ]
    chunks.append(
        {
            **head,
            "choices": [{"index": 0, "delta": {}, "finish_reason": reply.finish_reason or "stop"}],
        }
    )
    if (body.get("stream_options") or {}).get("include_usage"):
        chunks.append({**head, "choices": [], "usage": usage_json})
    data = b"".join(b"data: " + json.dumps(c).encode() + b"\n\n" for c in chunks)
    return 200, data + b"data: [DONE]\n\n", {"content-type": "text/event-stream"}


def _error_bytes(message: str) -> bytes:
    return json.dumps({"error": {"message": message, "type": "invalid_request_error"}}).encode()
