"""OpenAI's Responses API (`POST /v1/responses`) on the door, mapped onto each upstream's chat
API: `instructions` become a system message, `input` (text, or messages with `input_text`
parts) the user's turns, `previous_response_id` the stored conversation before them
(`gateway.journal.responses`); the chat answer comes back as a `response` object, or, with
`stream`, as the Responses event stream (`response.created` ... `response.output_text.delta`
... `response.completed`). Metered like any request, under the route `responses`.

What does not map onto a chat API is refused with a 400 that names the field, never dropped:
tools (built-in or functions), background mode, non-text input parts, reasoning settings, and
structured `text.format`.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import anyio

from gateway.journal import responses as stored
from gateway.journal.serving import ServeStore

REFUSED = {
    "tools": "tools (built-in or function) are not supported on this gateway yet",
    "background": "background mode is not supported: call without `background`",
    "reasoning": "reasoning settings do not map onto a chat API",
    "conversation": "conversation objects are not supported: use previous_response_id",
    "prompt": "stored prompt templates are not supported",
}


class ShapeError(ValueError):
    """A request the Responses mapping refuses: (param, message) for a 400."""

    def __init__(self, param: str, message: str):
        super().__init__(message)
        self.param = param


def _text_of(content: Any, param: str) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for part in content:
            kind = part.get("type") if isinstance(part, dict) else None
            if kind not in ("input_text", "output_text", "text"):
                raise ShapeError(param, f"input part of type {kind!r} is not supported (text only)")
            parts.append(str(part.get("text") or ""))
        return "".join(parts)
    raise ShapeError(param, "expected a string or a list of input_text parts")


def _messages_of(value: Any) -> list[dict[str, Any]]:
    if isinstance(value, str):
        return [{"role": "user", "content": value}]
    if not isinstance(value, list):
        raise ShapeError("input", "expected a string or a list of messages")
    out = []
    for i, item in enumerate(value):
        kind = item.get("type", "message") if isinstance(item, dict) else None
        if kind != "message" or item.get("role") not in (
            "user",
            "assistant",
            "system",
            "developer",
        ):
            raise ShapeError(
                f"input[{i}]", f"item of type {kind!r} is not supported (messages only)"
            )
        role = "system" if item["role"] == "developer" else item["role"]
        out.append({"role": role, "content": _text_of(item.get("content"), f"input[{i}].content")})
    return out


@dataclass
class ResponsesShape:
    """One Responses request: the chat body it becomes, then its answer in Responses form."""

    store: ServeStore
    key_id: str | None
    request: dict[str, Any] = field(default_factory=dict)
    messages: list[dict[str, Any]] = field(default_factory=list)
    msg_id: str = field(default_factory=lambda: "msg_" + uuid.uuid4().hex)

    def to_chat(self, body: dict[str, Any]) -> dict[str, Any]:
        self.request = body
        for name, why in REFUSED.items():
            if body.get(name):
                raise ShapeError(name, why)
        fmt = ((body.get("text") or {}).get("format") or {}).get("type", "text")
        if fmt != "text":
            raise ShapeError("text.format", f"text.format {fmt!r} is not supported (text only)")
        history: list[dict[str, Any]] = []
        if body.get("previous_response_id"):
            found = stored.conversation(self.store, str(body["previous_response_id"]), self.key_id)
            if found is None:
                raise ShapeError(
                    "previous_response_id",
                    f"Previous response with id '{body['previous_response_id']}' not found.",
                )
            history = [m for m in found if m.get("role") != "system"]
        system = (
            [{"role": "system", "content": str(body["instructions"])}]
            if body.get("instructions")
            else []
        )
        self.messages = system + history + _messages_of(body.get("input", ""))
        chat: dict[str, Any] = {"model": body["model"], "messages": self.messages}
        for ours, theirs in (("max_output_tokens", "max_tokens"), ("temperature", "temperature"),
                             ("top_p", "top_p"), ("user", "user"), ("metadata", "metadata")):  # fmt: skip
            if body.get(ours) is not None:
                chat[theirs] = body[ours]
        if body.get("stream"):
            chat["stream"] = True
            chat["stream_options"] = {"include_usage": True}
        return chat

    # the answer ---------------------------------------------------------------------------
    def _response(
        self, rid: str, text: str, usage: dict[str, int], finish: str | None
    ) -> dict[str, Any]:
        body = self.request
        cut = finish == "length"
        return {
            "id": rid, "object": "response", "created_at": int(time.time()), "model": body["model"],
            "status": "incomplete" if cut else "completed",
            "incomplete_details": {"reason": "max_output_tokens"} if cut else None,
            "error": None, "instructions": body.get("instructions"),
            "previous_response_id": body.get("previous_response_id"),
            "max_output_tokens": body.get("max_output_tokens"), "metadata": body.get("metadata") or {},
            "temperature": body.get("temperature"), "top_p": body.get("top_p"), "user": body.get("user"),
            "output": [{
                "type": "message", "id": self.msg_id, "status": "completed",
                "role": "assistant",
                "content": [{"type": "output_text", "text": text, "annotations": []}],
            }],
            "parallel_tool_calls": True, "tool_choice": "auto", "tools": [],
            "text": {"format": {"type": "text"}}, "truncation": "disabled",
            "store": body.get("store", True) is not False,
            "usage": {
                "input_tokens": usage.get("prompt_tokens", 0),
                "output_tokens": usage.get("completion_tokens", 0),
                "total_tokens": usage.get("prompt_tokens", 0) + usage.get("completion_tokens", 0),
                "input_tokens_details": {"cached_tokens": 0},
                "output_tokens_details": {"reasoning_tokens": 0},
            },
        }  # fmt: skip

    def _keep(self, rid: str, text: str, response: dict[str, Any]) -> None:
        if self.request.get("store", True) is not False:
            convo = [*self.messages, {"role": "assistant", "content": text}]
            stored.save(self.store, rid, self.request["model"], self.key_id, convo, response)

    def answer(self, rid: str, content: bytes) -> bytes:
        """A chat completion as a `response` (kept for `previous_response_id`)."""
        chat = json.loads(content)
        choice = (chat.get("choices") or [{}])[0]
        text = (choice.get("message") or {}).get("content") or ""
        done = self._response(rid, text, chat.get("usage") or {}, choice.get("finish_reason"))
        self._keep(rid, text, done)
        return json.dumps(done).encode()

    async def events(self, rid: str, chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
        """A chat completion stream as the Responses event stream."""
        seq = 0

        def event(kind: str, **data: Any) -> bytes:
            nonlocal seq
            seq += 1
            payload = {"type": kind, "sequence_number": seq - 1, **data}
            return f"event: {kind}\ndata: {json.dumps(payload)}\n\n".encode()

        head = self._response(rid, "", {}, None)
        item = {**head["output"][0], "status": "in_progress", "content": []}
        where = {"item_id": item["id"], "output_index": 0, "content_index": 0}
        yield event("response.created", response={**head, "status": "in_progress", "output": []})
        yield event(
            "response.in_progress", response={**head, "status": "in_progress", "output": []}
        )
        yield event("response.output_item.added", output_index=0, item=item)
        part = {"type": "output_text", "text": "", "annotations": []}
        yield event("response.content_part.added", part=part, **where)
        seen = _Seen()
        buffer = b""
        try:
            async for raw in chunks:
                buffer += raw
                while b"\n\n" in buffer:
                    frame, buffer = buffer.split(b"\n\n", 1)
                    for delta in seen.read(frame):
                        yield event("response.output_text.delta", delta=delta, logprobs=[], **where)
        finally:  # a client that went away still ends the upstream stream (and its metering)
            closing = getattr(chunks, "aclose", None)
            if closing is not None:
                await closing()
        whole = "".join(seen.text)
        done = self._response(rid, whole, seen.usage, seen.finish)
        await anyio.to_thread.run_sync(self._keep, rid, whole, done)
        yield event("response.output_text.done", text=whole, logprobs=[], **where)
        yield event("response.content_part.done", part={**part, "text": whole}, **where)
        yield event("response.output_item.done", output_index=0, item=done["output"][0])
        kind = "response.incomplete" if done["status"] == "incomplete" else "response.completed"
        yield event(kind, response=done)


@dataclass
class _Seen:
    """What a chat stream has said so far: its text, the usage chunk, the finish reason."""

    text: list[str] = field(default_factory=list)
    usage: dict[str, int] = field(default_factory=dict)
    finish: str | None = None

    def read(self, frame: bytes) -> list[str]:
        """The text deltas of one SSE frame (`data: {...}`)."""
        data = frame.strip().removeprefix(b"data:").strip()
        if not data or data == b"[DONE]":
            return []
        chunk = json.loads(data)
        self.usage = chunk.get("usage") or self.usage
        deltas = []
        for choice in chunk.get("choices") or []:
            self.finish = choice.get("finish_reason") or self.finish
            delta = (choice.get("delta") or {}).get("content")
            if delta:
                deltas.append(delta)
        self.text.extend(deltas)
        return deltas


def stored_routes(store: ServeStore, auth: Any) -> list[Any]:
    """`GET` and `DELETE /v1/responses/{id}`: a stored response, for the key that made it
    (anyone's is a 404, as OpenAI answers for an id it does not know)."""
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response
    from starlette.routing import Route

    def missing(rid: str) -> Response:
        body = {"message": f"Response with id '{rid}' not found.", "type": "invalid_request_error",
                "param": "response_id", "code": None}  # fmt: skip
        return JSONResponse({"error": body}, 404)

    async def retrieve(request: Request) -> Response:
        key, denied = auth(request)
        if denied:
            return denied
        rid = request.path_params["id"]
        found = await anyio.to_thread.run_sync(stored.response, store, rid, key.id if key else None)
        return JSONResponse(found) if found is not None else missing(rid)

    async def delete(request: Request) -> Response:
        key, denied = auth(request)
        if denied:
            return denied
        rid = request.path_params["id"]
        gone = await anyio.to_thread.run_sync(stored.delete, store, rid, key.id if key else None)
        if not gone:
            return missing(rid)
        return JSONResponse({"id": rid, "object": "response.deleted", "deleted": True})

    return [
        Route("/v1/responses/{id}", retrieve, methods=["GET"]),
        Route("/v1/responses/{id}", delete, methods=["DELETE"]),
    ]
