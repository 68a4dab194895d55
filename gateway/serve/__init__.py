"""`tunegate serve`: one OpenAI-compatible front door over every deployment, metering the
traffic the cost rule depends on (docs/serve.md).

`serve()` runs it in the foreground; `running()` runs it on a background thread and yields
its URL (tests, benchmarks, notebooks). Both refuse a non-loopback address until an API key
exists, so a gateway is never opened to a network by accident.
"""

from __future__ import annotations

import ipaddress
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from gateway.errors import ServeError

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8765


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@contextmanager
def _store_default(journal_path: Path | str | None) -> Iterator[None]:
    """A PostgreSQL store given to the gateway becomes this process's default while it runs:
    what the gateway starts opens the journal by default (a fine-tuning API launch, the
    advice, an --auto decision) and must land in the same store, not in a file beside it."""
    from gateway.journal.sql import is_url

    if not is_url(journal_path):
        yield
        return
    before = os.environ.get("TUNEGATE_STORE")
    os.environ["TUNEGATE_STORE"] = str(journal_path)
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("TUNEGATE_STORE", None)
        else:
            os.environ["TUNEGATE_STORE"] = before


def _check_bind(host: str, journal_path: Path | str | None) -> None:
    from gateway.catalog.extras import require
    from gateway.journal.serving import ServeStore

    require("starlette", "uvicorn", "python_multipart", "jinja2", what="tunegate serve")
    if _loopback(host):
        return
    with ServeStore(journal_path) as store:
        has_keys = bool(store.keys())
    if not has_keys:
        raise ServeError(
            f"refusing to listen on {host} without API keys: anyone who can reach it could spend "
            "your provider credit",
            fix="create one with `tunegate keys create NAME`, or serve on 127.0.0.1",
        )


def _config(app: object, host: str, port: int) -> object:
    import uvicorn

    # keep-alive outlasts clients' pools (httpx, so the OpenAI SDK, expires idle connections at
    # 5 s, uvicorn's own default): the client always closes first, so a request never lands
    # on a socket the server is closing, which the client sees as a ReadError
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level="warning",
        access_log=False,
        lifespan="on",
        timeout_keep_alive=75,
    )


def serve(
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    *,
    journal_path: Path | str | None = None,
    log_prompts: bool = False,
    ft_model: str | None = None,
    ui_folder: Path | None = None,
) -> None:
    """Serve until interrupted; `ui_folder` is where the dashboard picks job and data files."""
    import uvicorn

    from gateway.serve.app import Gateway

    with _store_default(journal_path):
        _check_bind(host, journal_path)
        gateway = Gateway(
            journal_path, log_prompts=log_prompts, ft_model=ft_model, ui_folder=ui_folder
        )
        gateway.upkeep.address = f"{host}:{port}"
        uvicorn.Server(_config(gateway.app(), host, port)).run()  # type: ignore[arg-type]


@contextmanager
def running(
    host: str = DEFAULT_HOST,
    port: int = 0,
    *,
    journal_path: Path | str | None = None,
    log_prompts: bool = False,
    ft_model: str | None = None,
    ui_folder: Path | None = None,
) -> Iterator[str]:
    """Serve on a background thread; yields the base URL (…/v1). Port 0 picks a free one."""
    import uvicorn

    from exporters.deploy.process import free_port
    from gateway.serve.app import Gateway

    with _store_default(journal_path):
        _check_bind(host, journal_path)
        port = port or free_port()
        gateway = Gateway(
            journal_path, log_prompts=log_prompts, ft_model=ft_model, ui_folder=ui_folder
        )
        gateway.upkeep.address = f"{host}:{port}"
        server = uvicorn.Server(_config(gateway.app(), host, port))  # type: ignore[arg-type]
        thread = threading.Thread(target=server.run, name="tunegate-serve", daemon=True)
        thread.start()
        deadline = time.monotonic() + 30
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise ServeError(f"the gateway did not start on {host}:{port}")
            time.sleep(0.02)
        try:
            yield f"http://{host}:{port}/v1"
        finally:
            server.should_exit = True
            thread.join(timeout=30)
