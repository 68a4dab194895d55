"""The loopback jail: in a process that installs it, every connection to an address outside
127.0.0.0/8 and ::1, and every name lookup of anything but `localhost`, is refused at once.

Why a jail rather than good intentions: CI machines have no network, and a library that reaches
out (SkyPilot's internet probe, a hub's telemetry, a name lookup of the machine's own host name)
makes a test that hangs or flakes offline, and sends a user's test run somewhere they did not ask.
So the suite installs this in its own process (`tests/jail/plugin.py`) and, through
`tests/jail/sitecustomize.py` on the `PYTHONPATH` it exports, in every Python process it starts,
whatever interpreter runs it (`.venv-sky` included).

A refusal raises `JailRefusal` (a `ConnectionRefusedError`, so code that copes with "no network"
still copes) or `JailLookupRefusal` (a `socket.gaierror`) naming the address, and appends one line
to the file named by `TUNEGATE_JAIL_LOG`; the plugin fails the test during which a line appeared,
whichever process wrote it, and lists every refusal at the end of the run.

Covered: `socket.socket.connect`/`connect_ex`/`sendto` (so `socket.create_connection`, http.client,
urllib3, httpx's sync transport, asyncio's default loop), name resolution (`getaddrinfo`,
`gethostbyname[_ex]`, `gethostbyaddr`), and uvloop's loop (which connects and resolves in C).
Not covered: native programs (llama.cpp's server binary, Chromium, which the tests start with
background networking off). Only the standard library is used: this file runs in every
interpreter the suite starts.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import ipaddress
import os
import socket
import sys
import threading
import time

LOG_VAR = "TUNEGATE_JAIL_LOG"
LOCAL_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback"})
_lock = threading.Lock()


class JailRefusal(ConnectionRefusedError):
    """A connection to an address outside loopback, refused before any packet was sent."""


class JailLookupRefusal(socket.gaierror):
    """A name lookup of something other than localhost, refused before any query was sent."""


def _hosts_file_names(path: str = "/etc/hosts") -> frozenset[str]:
    """Names /etc/hosts maps to a loopback address (the machine's own host name, usually):
    they resolve from that file, so looking them up sends nothing (torchrun asks for its own)."""
    names: set[str] = set()
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            lines = fh.read().splitlines()
    except OSError:
        return frozenset()
    for line in lines:
        fields = line.split("#", 1)[0].split()
        if len(fields) < 2:
            continue
        try:
            ip = ipaddress.ip_address(fields[0].split("%")[0])
        except ValueError:
            continue
        if ip.is_loopback:
            names.update(n.lower().rstrip(".") for n in fields[1:])
    return frozenset(names)


_LOCAL = LOCAL_NAMES | _hosts_file_names()


def is_loopback(host: object) -> bool:
    """True for 127.0.0.0/8, ::1, ::ffff:127.x, `localhost`, and names /etc/hosts maps to a
    loopback address."""
    if isinstance(host, bytes):
        host = host.decode("ascii", "replace")
    if not isinstance(host, str):
        return False
    name = host.strip("[]").split("%")[0].lower().rstrip(".")
    if name in _LOCAL:
        return True
    try:
        ip = ipaddress.ip_address(name)
    except ValueError:
        return False
    mapped = getattr(ip, "ipv4_mapped", None)
    return bool(ip.is_loopback or (mapped is not None and mapped.is_loopback))


def _is_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]").split("%")[0])
        return True
    except ValueError:
        return False


def _record(kind: str, target: str) -> None:
    """One line a refusal, appended (O_APPEND keeps lines of many processes whole)."""
    path = os.environ.get(LOG_VAR)
    if not path:
        return
    argv = " ".join(sys.argv[:3])[:160]
    line = f"{time.time():.3f}\tpid {os.getpid()}\t{kind}\t{target}\t{argv}\n"
    with _lock:
        try:
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                os.write(fd, line.encode("utf-8", "replace"))
            finally:
                os.close(fd)
        except OSError:
            pass


def refuse_connect(address: object) -> None:
    """Raise JailRefusal unless `address` (a socket address tuple) is on loopback."""
    if not isinstance(address, tuple) or not address:
        return  # AF_UNIX paths, netlink pids: not the network
    host = address[0]
    if is_loopback(host):
        return
    text = host.decode("ascii", "replace") if isinstance(host, bytes) else str(host)
    text = f"[{text}]" if ":" in text else text
    shown = f"{text}:{address[1]}" if len(address) > 1 else text
    _record("connect", shown)
    raise JailRefusal(
        111,
        f"loopback jail: connection to {shown} refused (tests may only reach 127.0.0.0/8 or ::1)",
    )


def refuse_lookup(host: object) -> None:
    """Raise JailLookupRefusal for a name that is not localhost (IP literals pass: no query)."""
    if host is None or host in ("", b""):
        return  # a passive (bind) lookup
    text = host.decode("ascii", "replace") if isinstance(host, bytes) else str(host)
    if is_loopback(text) or _is_literal(text):
        return
    if text.lower().rstrip(".") in _hosts_file_names():  # /etc/hosts changed since start-up
        return
    _record("lookup", text)
    raise JailLookupRefusal(
        socket.EAI_NONAME,
        f"loopback jail: name lookup of {text!r} refused (tests may only resolve localhost)",
    )


def _check(sock: socket.socket, address: object) -> None:
    if sock.family in (socket.AF_INET, socket.AF_INET6) and isinstance(address, tuple):
        refuse_lookup(address[0])
        refuse_connect(address)


def _patch_socket() -> None:
    cls = socket.socket
    connect, connect_ex, sendto = cls.connect, cls.connect_ex, cls.sendto

    def jailed_connect(self, address):
        _check(self, address)
        return connect(self, address)

    def jailed_connect_ex(self, address):
        _check(self, address)
        return connect_ex(self, address)

    def jailed_sendto(self, data, *args):
        if self.family in (socket.AF_INET, socket.AF_INET6) and args:
            refuse_connect(args[-1])
        return sendto(self, data, *args)

    cls.connect, cls.connect_ex, cls.sendto = jailed_connect, jailed_connect_ex, jailed_sendto

    getaddrinfo = socket.getaddrinfo
    gethostbyname, gethostbyname_ex = socket.gethostbyname, socket.gethostbyname_ex
    gethostbyaddr = socket.gethostbyaddr

    def jailed_getaddrinfo(host, *args, **kwargs):
        refuse_lookup(host)
        return getaddrinfo(host, *args, **kwargs)

    def jailed_gethostbyname(host):
        refuse_lookup(host)
        return gethostbyname(host)

    def jailed_gethostbyname_ex(host):
        refuse_lookup(host)
        return gethostbyname_ex(host)

    def jailed_gethostbyaddr(host):
        if not is_loopback(host):
            _record("lookup", str(host))
            raise JailLookupRefusal(
                socket.EAI_NONAME, f"loopback jail: reverse lookup of {host!r} refused"
            )
        return gethostbyaddr(host)

    socket.getaddrinfo = jailed_getaddrinfo
    socket.gethostbyname = jailed_gethostbyname
    socket.gethostbyname_ex = jailed_gethostbyname_ex
    socket.gethostbyaddr = jailed_gethostbyaddr


def _jail_uvloop(module) -> None:
    """uvloop resolves and connects in C: wrap its loop so those calls are checked first."""
    base = module.Loop

    class JailedLoop(base):
        async def getaddrinfo(self, host, *args, **kwargs):
            refuse_lookup(host)
            return await super().getaddrinfo(host, *args, **kwargs)

        async def create_connection(self, protocol_factory, host=None, port=None, **kwargs):
            if host is not None:
                refuse_lookup(host)
                refuse_connect((host, port))
            return await super().create_connection(protocol_factory, host, port, **kwargs)

        async def sock_connect(self, sock, address):
            if sock.family in (socket.AF_INET, socket.AF_INET6):
                refuse_connect(address)
            return await super().sock_connect(sock, address)

        async def create_datagram_endpoint(self, protocol_factory, local_addr=None,
                                           remote_addr=None, **kwargs):  # fmt: skip
            if remote_addr is not None:
                refuse_connect(remote_addr)
            return await super().create_datagram_endpoint(
                protocol_factory, local_addr=local_addr, remote_addr=remote_addr, **kwargs
            )

    module.Loop = JailedLoop
    module.new_event_loop = JailedLoop


def _jail_skypilot(module) -> None:
    """SkyPilot probes https://8.8.8.8 and https://1.1.1.1 for "internet" before status and
    queue calls; under test that probe is a no-op (the jail would refuse it anyway)."""
    if hasattr(module, "check_network_connection"):
        module.check_network_connection = lambda *args, **kwargs: None


def _jail_skypilot_version_check(module) -> None:
    """SkyPilot's API server asks pypi.org for its latest release; under test it does not."""
    if hasattr(module, "_check_pypi_release"):
        module._check_pypi_release = lambda *args, **kwargs: None


_AFTER_IMPORT = {
    "uvloop": _jail_uvloop,
    "sky.backends.backend_utils": _jail_skypilot,
    "sky.server.version_check": _jail_skypilot_version_check,
}


class _PatchingLoader(importlib.abc.Loader):
    def __init__(self, loader, patch) -> None:
        self._loader, self._patch = loader, patch

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module) -> None:
        self._loader.exec_module(module)
        self._patch(module)


class _Finder(importlib.abc.MetaPathFinder):
    """Patches a module right after it is first executed, wherever it is imported from."""

    def find_spec(self, fullname, path, target=None):
        patch = _AFTER_IMPORT.get(fullname)
        if patch is None:
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is None or spec.loader is None:
            return None
        spec.loader = _PatchingLoader(spec.loader, patch)
        return spec


def install() -> None:
    """Jail this process (idempotent); modules already imported are patched now."""
    if getattr(socket, "_tunegate_jailed", False):
        return  # jailed already (by sitecustomize, or another copy of this module)
    socket._tunegate_jailed = True  # type: ignore[attr-defined]
    _patch_socket()
    for name, patch in _AFTER_IMPORT.items():
        if name in sys.modules:
            patch(sys.modules[name])
    sys.meta_path.insert(0, _Finder())
