"""A real PostgreSQL server for the tests: Debian's `postgresql` package (which `.ci/run`
installs), started in a temporary folder on a loopback port, trust auth, removed afterwards.

initdb refuses to run as root, so under root the server runs as the `postgres` user the
package creates. Each test gets its own throwaway database (`fresh_database`).
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path


def binaries() -> Path | None:
    """The folder with initdb and postgres, or None when PostgreSQL is not installed."""
    for candidate in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        if Path(candidate, "initdb").exists():
            return Path(candidate)
    found = shutil.which("initdb")
    return Path(found).parent if found else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _as_owner(cmd: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd


class Server:
    """A PostgreSQL server in a temporary folder: started, stopped and started again (the
    store-away tests), removed with its folder."""

    def __init__(self) -> None:
        bindir = binaries()
        assert bindir is not None
        self.bindir = bindir
        self.folder = Path(tempfile.mkdtemp(prefix="tg-pg-"))
        self.data, self.port = self.folder / "data", _free_port()
        if os.geteuid() == 0:
            shutil.chown(self.folder, "postgres")
        subprocess.run(_as_owner([str(bindir / "initdb"), "-D", str(self.data), "-A", "trust",
                                  "-U", "postgres", "--no-sync", "-E", "UTF8"]), **_RUN)  # fmt: skip
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def start(self) -> None:
        options = (
            f"-c listen_addresses=127.0.0.1 -c port={self.port}"
            f" -c unix_socket_directories={self.folder} -c fsync=off -c synchronous_commit=off"
            " -c full_page_writes=off -c max_connections=200"
        )
        subprocess.run(_as_owner([str(self.bindir / "pg_ctl"), "-D", str(self.data), "-l",
                                  str(self.folder / "server.log"), "-o", options, "-w", "-t",
                                  "60", "start"]), **_RUN)  # fmt: skip

    def stop(self, mode: str = "fast") -> None:
        """Stop it: `fast` keeps what was committed (this test server acknowledges commits
        before their WAL is written, so `immediate` may lose the last ones)."""
        subprocess.run(_as_owner([str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m",
                                  mode, "-w", "stop"]), capture_output=True)  # fmt: skip

    def remove(self) -> None:
        self.stop("immediate")
        shutil.rmtree(self.folder, ignore_errors=True)


_RUN: dict = dict(check=True, capture_output=True, text=True)


@contextlib.contextmanager
def server() -> Iterator[str]:
    """Start a server; yields the URL of its `postgres` database."""
    found = Server()
    try:
        found.start()
        yield found.url
    finally:
        found.remove()


@contextlib.contextmanager
def fresh_database(admin_url: str) -> Iterator[str]:
    """A new empty database on the server; dropped (connections and all) afterwards."""
    import psycopg

    name = "tg_" + uuid.uuid4().hex[:12]
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    try:
        yield admin_url.rsplit("/", 1)[0] + "/" + name
    finally:
        from gateway.journal import postgres

        with postgres._POOLS_LOCK:  # this process's pools on it go first
            for url in [u for u in postgres._POOLS if u.endswith("/" + name)]:
                postgres._POOLS.pop(url).close()
        deadline = time.monotonic() + 10
        with psycopg.connect(admin_url, autocommit=True) as conn:
            while True:
                try:
                    conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
                    break
                except psycopg.errors.ObjectInUse:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.2)
