"""A small HTTP server on 127.0.0.1 for provider fakes, with fault injection.

Routes are (method, regex) -> handler(Request) -> Reply. Faults are drawn per request with a
seeded RNG (or scripted for the next matching request):

- "429": rate limited, with `retry-after-ms` (what the SDKs read first)
- "500" / "503": server errors
- "400": a definite refusal (scripted only)
- "slow": the request is processed, but the answer comes after the client has given up
- "drop": the connection is closed before anything is processed
- "lost": the request is processed (a job is created!) and the connection closed unanswered
"""

from __future__ import annotations

import contextlib
import email.parser
import email.policy
import json
import random
import re
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

FAULTS = ("429", "500", "503", "slow", "drop", "lost")


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    match: re.Match[str] | None = None

    def json(self) -> Any:
        return json.loads(self.body or b"{}")

    def form(self) -> dict[str, Any]:
        """multipart/form-data fields; file parts come back as (filename, bytes)."""
        ctype = self.headers.get("content-type", "")
        msg = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
            f"Content-Type: {ctype}\r\n\r\n".encode() + self.body
        )
        out: dict[str, Any] = {}
        for part in msg.iter_parts():
            name = part.get_param("name", header="content-disposition")
            payload = part.get_payload(decode=True) or b""
            filename = part.get_filename()
            out[name] = (filename, payload) if filename else payload.decode()
        return out


@dataclass
class Reply:
    status: int = 200
    body: Any = None  # dict/list -> JSON; bytes -> raw
    headers: dict[str, str] = field(default_factory=dict)
    truncate_at: int | None = None  # send this many body bytes, then drop the connection


Handler = Callable[[Request], Reply]


@dataclass
class Faults:
    rate: float = 0.0
    seed: int = 0
    kinds: tuple[str, ...] = FAULTS
    slow_s: float = 1.5
    exempt: tuple[str, ...] = ()  # path regexes never faulted (e.g. presigned storage)
    scripted: list[tuple[str, str, str]] = field(default_factory=list)  # (method, path re, kind)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)
        self._lock = threading.Lock()
        self.injected: list[tuple[str, str, str]] = []

    def script(self, method: str, path_re: str, kind: str) -> None:
        """Inject `kind` into the next request matching method and path."""
        self.scripted.append((method, path_re, kind))

    def draw(self, method: str, path: str, creates: bool) -> str | None:
        with self._lock:
            for i, (m, pattern, kind) in enumerate(self.scripted):
                if m == method and re.search(pattern, path):
                    del self.scripted[i]
                    self.injected.append((method, path, kind))
                    return kind
            if any(re.search(p, path) for p in self.exempt) or self._rng.random() >= self.rate:
                return None
            kinds = [k for k in self.kinds if k != "lost" or creates]
            kind = self._rng.choice(kinds)
            self.injected.append((method, path, kind))
            return kind


class _Server(ThreadingHTTPServer):
    request_queue_size = 256  # the default 5 refuses connections under a load test


class FakeServer:
    """Serve `routes` on a random local port in a background thread."""

    def __init__(
        self,
        routes: list[tuple[str, str, Handler]],
        faults: Faults | None = None,
        creates: tuple[str, ...] = (),
    ):
        self.routes = [(m, re.compile(p), h) for m, p, h in routes]
        self.faults = faults or Faults()
        self.creates = creates  # "METHOD path-regex" of requests that create billable things
        self.requests: list[Request] = []
        server = self

        class _Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _serve(self) -> None:
                server._handle(self)

            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = _serve

        self._httpd = _Server(("127.0.0.1", 0), _Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> FakeServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def _route(self, method: str, path: str) -> tuple[Handler | None, re.Match[str] | None]:
        for m, pattern, handler in self.routes:
            if m == method and (match := pattern.fullmatch(path)):
                return handler, match
        return None, None

    def _handle(self, h: BaseHTTPRequestHandler) -> None:
        parts = urlsplit(h.path)
        length = int(h.headers.get("content-length") or 0)
        body = h.rfile.read(length) if length else b""
        req = Request(
            h.command,
            parts.path,
            dict(parse_qsl(parts.query)),
            {k.lower(): v for k, v in h.headers.items()},
            body,
        )
        self.requests.append(req)
        handler, req.match = self._route(h.command, parts.path)
        creates = any(
            c.split(" ", 1)[0] == h.command and re.fullmatch(c.split(" ", 1)[1], parts.path)
            for c in self.creates
        )
        fault = self.faults.draw(h.command, parts.path, creates) if handler else None
        if fault == "drop":
            return _drop(h)
        if fault in ("400", "429", "500", "503"):
            headers = {"retry-after-ms": "30"} if fault == "429" else {}
            return _send(h, Reply(int(fault), {"error": {"message": f"injected {fault}"}}, headers))
        if handler is None:
            return _send(
                h, Reply(404, {"error": {"message": f"no route {h.command} {parts.path}"}})
            )
        try:
            reply = handler(req)
        except Exception as exc:  # a bug in the fake: answer 500 visibly
            reply = Reply(500, {"error": {"message": f"fake crashed: {exc!r}"}})
        if fault == "lost":
            return _drop(h)
        if fault == "slow":
            time.sleep(self.faults.slow_s)
        _send(h, reply)


SECRET = "sk-tunegate-test-SECRET-0123456789abcdef"  # a key no output may ever contain


def retry_env(
    monkeypatch: Any, timeout_s: float, budget_s: float, max_wait_s: float | None
) -> None:
    """Short client timeouts and retry budgets, so injected faults cost a test seconds."""
    monkeypatch.setenv("TUNEGATE_HTTP_TIMEOUT_S", str(timeout_s))
    monkeypatch.setenv("TUNEGATE_RETRY_BUDGET_S", str(budget_s))
    if max_wait_s is not None:
        monkeypatch.setenv("TUNEGATE_RETRY_MAX_WAIT_S", str(max_wait_s))


class FakeAPI:
    """A provider fake: its routes served by `self.server`, usable as a context manager; its
    `env(monkeypatch)` points the provider's official SDK at it (`sdk_env()`)."""

    server: FakeServer
    max_wait_s: float | None = None  # the retry back-off cap its tests run with

    def sdk_env(self) -> dict[str, str]:
        """The variables the SDK reads: where the API is, and a key."""
        raise NotImplementedError

    def env(self, monkeypatch: Any, *, timeout_s=0.5, budget_s=30, max_wait_s=None) -> None:
        for var, value in self.sdk_env().items():
            monkeypatch.setenv(var, value)
        retry_env(monkeypatch, timeout_s, budget_s, max_wait_s or self.max_wait_s)

    def __enter__(self) -> Any:
        self.server.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.__exit__(*exc)

    @property
    def base_url(self) -> str:
        return self.server.url


def _drop(h: BaseHTTPRequestHandler) -> None:
    h.close_connection = True
    with contextlib.suppress(OSError):
        h.connection.shutdown(socket.SHUT_RDWR)


def _send(h: BaseHTTPRequestHandler, reply: Reply) -> None:
    if isinstance(reply.body, bytes):
        data, ctype = reply.body, "application/octet-stream"
    elif reply.body is None:
        data, ctype = b"", "application/json"
    else:
        data, ctype = json.dumps(reply.body).encode(), "application/json"
    try:
        h.send_response(reply.status)
        headers = {"content-type": ctype, **{k.lower(): v for k, v in reply.headers.items()}}
        headers["content-length"] = str(len(data))
        for k, v in headers.items():
            h.send_header(k, v)
        h.end_headers()
        if h.command == "HEAD":
            return
        if reply.truncate_at is not None:
            h.wfile.write(data[: reply.truncate_at])
            h.wfile.flush()
            return _drop(h)
        h.wfile.write(data)
    except (BrokenPipeError, ConnectionResetError):
        pass


def chat_reply(model: str, question: str, body: dict[str, Any] | None = None) -> Reply:
    """An OpenAI-style chat completion whose answer shows which model answered: `[model]` and
    the question reversed (the hosted fakes have no weights to run). Usage counts words."""
    body = body or {}
    answer = f"[{model}] {question[::-1]}"
    prompt = sum(len(str(m.get("content", "")).split()) for m in body.get("messages") or []) or 3
    return openai_chat(model, answer, "stop", (prompt, len(answer.split())), body)


def openai_chat(
    model: str, text: str, reason: str, tokens: tuple[int, int], body: dict[str, Any]
) -> Reply:
    """An answer shaped as OpenAI's chat completion. With `"stream": true` in `body` it is
    Server-Sent Events, one chunk per word, and a usage chunk when
    `stream_options.include_usage` asks for it, as OpenAI documents."""
    usage = {
        "prompt_tokens": tokens[0],
        "completion_tokens": tokens[1],
        "total_tokens": tokens[0] + tokens[1],
    }
    head = {"id": "chatcmpl-fake", "created": int(time.time()), "model": model}
    if not body.get("stream"):
        return Reply(
            200,
            {
                **head,
                "object": "chat.completion",
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": text},
                        "finish_reason": reason,
                    }
                ],
                "usage": usage,
            },
        )
    head["object"] = "chat.completion.chunk"
    words = text.split(" ")
    deltas = [{"role": "assistant", "content": ""}] + [
        {"content": w if i == 0 else " " + w} for i, w in enumerate(words)
    ]
    chunks = [
        {**head, "choices": [{"index": 0, "delta": d, "finish_reason": None}]} for d in deltas
    ]
    chunks.append({**head, "choices": [{"index": 0, "delta": {}, "finish_reason": reason}]})
    if (body.get("stream_options") or {}).get("include_usage"):
        chunks.append({**head, "choices": [], "usage": usage})
    data = b"".join(b"data: " + json.dumps(c).encode() + b"\n\n" for c in chunks)
    return Reply(200, data + b"data: [DONE]\n\n", {"content-type": "text/event-stream"})
