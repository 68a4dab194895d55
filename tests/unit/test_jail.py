"""The loopback jail holds (tests/jail/): a subprocess the tests start cannot reach a public
address or resolve a public name, it can reach a loopback server, and a refusal fails the test
that made it, naming the address. Each probe writes to a log of its own, so the suite's log
stays clean."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from tests.jail import tunegate_jail

ROOT = Path(__file__).resolve().parents[2]
PUBLIC = "203.0.113.9"  # TEST-NET-3 (RFC 5737): never anyone's server


def _run(code: str, log: Path, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, tunegate_jail.LOG_VAR: str(log)}
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_a_subprocess_is_refused_a_public_address_at_once(tmp_path):
    log = tmp_path / "refusals.log"
    start = time.monotonic()
    done = _run(f"import socket; socket.create_connection(({PUBLIC!r}, 443), timeout=30)", log)
    assert done.returncode != 0
    assert time.monotonic() - start < 20  # refused, not timed out
    assert "loopback jail" in done.stderr and f"{PUBLIC}:443" in done.stderr
    assert f"connect\t{PUBLIC}:443" in log.read_text()


def test_a_subprocess_is_refused_a_name_lookup_and_ipv6(tmp_path):
    log = tmp_path / "refusals.log"
    done = _run(
        """
        import socket
        for probe in (lambda: socket.getaddrinfo("example.com", 443),
                      lambda: socket.create_connection(("example.com", 80)),
                      lambda: socket.create_connection(("2001:db8::1", 80))):
            try:
                probe()
                print("REACHED")
            except OSError as err:
                print("refused:", err)
        """,
        log,
    )
    assert done.returncode == 0, done.stderr
    assert "REACHED" not in done.stdout
    assert done.stdout.count("loopback jail:") == 3, done.stdout
    text = log.read_text()
    assert "lookup\texample.com" in text and "connect\t[2001:db8::1]:80" in text


def test_a_subprocess_reaches_a_loopback_server(tmp_path):
    log = tmp_path / "refusals.log"
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]

    def answer() -> None:
        conn, _ = server.accept()
        with conn:
            conn.sendall(b"hello from loopback")

    thread = threading.Thread(target=answer, daemon=True)
    thread.start()
    try:
        done = _run(
            f"""
            import socket
            with socket.create_connection(("localhost", {port}), timeout=10) as s:
                print(s.recv(100).decode())
            """,
            log,
        )
    finally:
        thread.join(10)
        server.close()
    assert done.returncode == 0, done.stderr
    assert "hello from loopback" in done.stdout
    assert not log.exists() or log.read_text() == ""


def test_this_process_is_jailed_too(tmp_path, monkeypatch):
    monkeypatch.setenv(tunegate_jail.LOG_VAR, str(tmp_path / "refusals.log"))
    with pytest.raises(ConnectionRefusedError, match=PUBLIC):
        socket.create_connection((PUBLIC, 80), timeout=30)
    with pytest.raises(socket.gaierror, match=r"example\.org"):
        socket.getaddrinfo("example.org", 80)
    assert (tmp_path / "refusals.log").read_text().count("\n") == 2


def test_uvloop_connections_are_jailed(tmp_path):
    pytest.importorskip("uvloop")
    log = tmp_path / "refusals.log"
    done = _run(
        f"""
        import asyncio, uvloop
        async def main():
            try:
                await asyncio.open_connection({PUBLIC!r}, 443)
                print("REACHED")
            except OSError as err:
                print("refused:", err)
        uvloop.run(main())
        """,
        log,
    )
    assert done.returncode == 0, done.stderr
    assert f"loopback jail: connection to {PUBLIC}:443 refused" in done.stdout


def test_skypilot_network_probe_is_a_no_op_in_the_jail(tmp_path):
    sky_python = ROOT / ".venv-sky" / "bin" / "python"
    if not sky_python.exists():
        pytest.skip("SkyPilot's environment is missing (make test builds .venv-sky)")
    log = tmp_path / "refusals.log"
    env = {**os.environ, tunegate_jail.LOG_VAR: str(log)}
    done = subprocess.run(
        [str(sky_python), "-c", "from sky.backends import backend_utils as b; "
         "b.check_network_connection(); print('offline ok')"],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "offline ok" in done.stdout
    assert not log.exists() or log.read_text() == ""


def test_a_refusal_in_a_subprocess_fails_the_test_that_made_it(pytester, monkeypatch):
    pytester.makeconftest('pytest_plugins = ["tests.jail.plugin"]')
    pytester.makepyfile(
        test_reaches_out=f"""
        import subprocess, sys

        def test_quiet():
            pass

        def test_reaches_out():
            code = "import socket\\ntry:\\n socket.create_connection(({PUBLIC!r}, 443))\\n" \\
                   "except OSError:\\n pass"  # the child swallows the error: the log still tells
            subprocess.run([sys.executable, "-c", code], check=True)
        """
    )
    env_path = os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])
    monkeypatch.setenv("PYTHONPATH", env_path)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines([f"*test_reaches_out*connect {PUBLIC}:443*"])
