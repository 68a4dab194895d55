"""An HTTP relay that loses answers: it forwards every request to `target`, and for the first
`drops` requests matching a method and path it waits for the answer, then closes the connection
without sending it. The client sees a dropped connection after the server acted, which is the
case a retried create must not turn into a second job."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx

HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "host"}


class LossyProxy:
    def __init__(self, target: str, method: str, path: str, drops: int = 1):
        self.target, self.method, self.path = target.rstrip("/"), method, path
        self.drops = drops
        self.forwarded: list[str] = []
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def _relay(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length) if length else b""
                headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP}
                res = httpx.request(
                    self.command,
                    proxy.target + self.path,
                    headers=headers,
                    content=body,
                    timeout=300,
                )
                proxy.forwarded.append(f"{self.command} {self.path}")
                if self.command == proxy.method and self.path.split("?")[0] == proxy.path:
                    with proxy._lock:
                        drop = proxy.drops > 0
                        proxy.drops -= drop
                    if drop:
                        self.close_connection = True
                        self.connection.close()  # the server acted; the answer is lost
                        return
                self.send_response(res.status_code)
                for k, v in res.headers.items():
                    if k.lower() not in HOP:
                        self.send_header(k, v)
                self.send_header("content-length", str(len(res.content)))
                self.end_headers()
                self.wfile.write(res.content)

            do_GET = do_POST = do_DELETE = _relay

        self._lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> LossyProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
