"""The gateway's engine supervisor with a real process (a small HTTP server that takes a moment
to come up): requests that arrive while the first start is underway wait for it instead of
being refused as "down"; once it has run and died, a request is refused (it falls back) and the
engine comes back in the background."""

from __future__ import annotations

import asyncio
import sys
import textwrap

import httpx
import pytest

from exporters.deploy.base import Upstream
from exporters.deploy.engines import Engines
from gateway.errors import ServeError

SLOW_SERVER = textwrap.dedent(
    """
    import sys, time
    from http.server import BaseHTTPRequestHandler, HTTPServer
    time.sleep(0.8)  # loading a model

    class H(BaseHTTPRequestHandler):
        def log_message(self, *a):
            pass

        def do_GET(self):
            self.send_response(200)
            self.send_header("content-length", "2")
            self.end_headers()
            self.wfile.write(b"{}")

    HTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
    """
)


def test_requests_wait_for_the_first_start_then_fall_back_while_it_restarts(tmp_path):
    upstream = Upstream("engine", "m", command=(sys.executable, "-c", SLOW_SERVER, "{port}"))

    async def scenario() -> None:
        async with httpx.AsyncClient() as client:
            engines = Engines(tmp_path, client)
            try:
                urls = await asyncio.gather(*(engines.url("dep-1", upstream) for _ in range(4)))
                assert len(set(urls)) == 1
                (state,) = engines.states()
                assert state["starts"] == 1 and state["url"] == urls[0]

                engines._engines["dep-1"].process.kill()  # the engine dies
                engines._engines["dep-1"].process.wait()
                with pytest.raises(ServeError, match="is down"):
                    await engines.url("dep-1", upstream)
                for _ in range(100):  # restarted in the background
                    await asyncio.sleep(0.1)
                    if engines.states()[0]["url"]:
                        break
                (state,) = engines.states()
                assert state["starts"] == 2 and state["url"]
                assert await engines.url("dep-1", upstream) == state["url"]
            finally:
                engines.close()

    asyncio.run(scenario())
