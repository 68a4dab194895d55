"""`tunegate doctor`: what this machine can do, and for each missing piece what it blocks and the
command that fixes it (as `sky check` and `flutter doctor` do).

Extras are read from package metadata without importing them; only llama.cpp and mlx-lm are
imported, since "installed" is not "loads" for a compiled library. Credentials are reported by
variable name only: a value is never read into the report.
"""

from __future__ import annotations

import contextlib
import os
import platform
import sys
from pathlib import Path
from typing import Any

from gateway.catalog.extras import EXTRAS, installed
from gateway.catalog.hardware import Machine
from gateway.util.checks import Check


def credentials_needed() -> dict[str, list[tuple[str, ...]]]:
    """provider -> what it needs (any one variable of a tuple is enough), from the registry."""
    import providers

    needs = {n: providers.get_provider(n).credential_needs() for n in providers.HOSTED}  # type: ignore[attr-defined]
    return {**needs, "hf hub": [("HF_TOKEN",)]}


def doctor(
    *,
    ollama_host: str | None = None,
    timeout_s: float = 0.5,
    clouds: bool = False,
    canary: bool = False,
) -> list[Check]:
    """Every check, in the order a person reads them; `clouds` asks SkyPilot now which clouds
    it enabled and what GPUs cost there (cached for `tunegate plan`); `canary` runs the
    isolation canary of every engine group with live members (each in an engine of its own
    for the run, so a serving gateway is not disturbed)."""
    from gateway.catalog import load_catalog
    from gateway.catalog.hardware import detect

    machine = detect(load_catalog())
    return [
        _python(),
        *_extras(machine),
        _hardware(machine),
        _llama_cpp(),
        _llama_server(),
        _mlx_lm(),
        _ollama(ollama_host, timeout_s),
        *_runners(clouds),
        *_credentials(),
        _home(),
        _store(),
        *(canaries() if canary else []),
    ]


def _llama_server() -> Check:
    from exporters.deploy import llama_server

    found = llama_server.binary()
    if found is None:
        return Check(
            "engine",
            "llama-server",
            None,
            "llama.cpp's own server is not installed",
            "several LoRA fine-tunes of one base in one engine (deploy --to llamacpp)",
            llama_server.BUILD_FIX,
        )
    return Check("engine", "llama-server", True, str(found))


def canaries() -> list[Check]:
    """The isolation canary of each engine group that has live members, run now."""
    from exporters.deploy import get_deployer
    from exporters.deploy.base import Shares
    from exporters.deploy.canary import check
    from exporters.deploy.groups import engines_home, reference_prints
    from exporters.deploy.process import started
    from gateway.errors import TunegateError
    from gateway.journal.deployments import deployments

    live = [d for d in deployments() if d.state == "live"]
    found: dict[tuple[str, str], Any] = {}
    for dep in live:
        if dep.meta.get("group"):
            found.setdefault((dep.target, str(dep.meta["group"])), dep)
    if not found:
        return [Check("canary", "engine groups", None, "no engine group has live members")]
    out = []
    for (target, key), dep in sorted(found.items()):
        try:
            deployer = get_deployer(target)
            if not isinstance(deployer, Shares):
                continue
            up = deployer.upstream_among(dep, [d for d in live if d.target == target])
            with started(up.command, engines_home() / key / "canary.log", env=up.env) as url:
                report = check(
                    url, dict(up.headers), list(up.canary), reference_prints(up.references)
                )
        except TunegateError as exc:
            out.append(Check("canary", key, False, exc.message, "serving the group", exc.fix or ""))
            continue
        fix = "" if report.passed else "undeploy the member it names; `tunegate deployments`"
        out.append(Check("canary", key, report.passed, report.summary(), "", fix))
    return out


def _python() -> Check:
    v = sys.version_info
    ok = v >= (3, 10)
    return Check(
        "python",
        "python",
        ok,
        f"{platform.python_version()} at {sys.executable}",
        "" if ok else "tunegate itself",
        "" if ok else "install Python 3.10 or newer",
    )


def _extras(machine: Machine) -> list[Check]:
    out = []
    for extra in EXTRAS.values():
        present, absent = installed(extra.name)
        have = ", ".join(f"{d} {v}" for d, v in present.items())
        if not absent:
            out.append(Check("extra", extra.name, True, have))
            continue
        detail = f"missing {', '.join(absent)}" + (f" (has {have})" if have else "")
        # unsloth needs an NVIDIA GPU: absent is the normal state on every other machine
        optional = extra.name == "unsloth" and machine.kind != "nvidia"
        out.append(
            Check(
                "extra", extra.name, None if optional else False, detail, extra.purpose, extra.fix
            )
        )
    return out


def _hardware(m: Machine) -> Check:
    if m.kind == "cpu":
        return Check(
            "hardware",
            "accelerator",
            None,
            f"CPU only: {m.name}, {m.cores} cores, {m.ram_gb:.0f} GB RAM",
            "unsloth, QLoRA (bitsandbytes) and fast local training",
            "train small models here (the demo), or let `tunegate plan` price a rented GPU "
            "or a hosted backend",
        )
    return Check(
        "hardware",
        "accelerator",
        True,
        f"{m.kind}: {m.name} x{max(m.gpus, 1)}, {m.gpu_memory_gb:.0f} GB (catalog {m.hardware_id})",
    )


def _llama_cpp() -> Check:
    try:
        import llama_cpp
    except ImportError:
        return Check(
            "engine",
            "llama.cpp",
            False,
            "llama-cpp-python is not importable",
            "GGUF export and verification, --to llamacpp, chat with a GGUF",
            EXTRAS["gguf"].fix,
        )
    except Exception as exc:  # a broken native build: say so, not a traceback
        return Check("engine", "llama.cpp", False, f"fails to load: {exc}", "GGUF", "")
    return Check("engine", "llama.cpp", True, f"llama-cpp-python {llama_cpp.__version__}")


def _mlx_lm() -> Check:
    import importlib.metadata
    import importlib.util

    absent = Check(
        "engine",
        "mlx-lm",
        False,
        "mlx-lm is not importable",
        "the mlx backend and --to mlx exports",
        EXTRAS["mlx"].fix,
    )
    if importlib.util.find_spec("mlx_lm") is None:
        return absent
    try:
        import mlx.core as mx  # the compiled part; mlx_lm itself is plain Python
    except ImportError:
        return absent
    except Exception as exc:
        return Check("engine", "mlx-lm", False, f"fails to load: {exc}", "MLX", "")
    version = importlib.metadata.version("mlx-lm")
    return Check("engine", "mlx-lm", True, f"mlx-lm {version} on {mx.default_device()}")


def _ollama(host: str | None, timeout_s: float) -> Check:
    import httpx

    host = host or os.environ.get("OLLAMA_HOST") or "http://127.0.0.1:11434"
    if "://" not in host:
        host = f"http://{host}"
    try:
        res = httpx.get(f"{host.rstrip('/')}/api/version", timeout=timeout_s)
        res.raise_for_status()
        version = res.json().get("version", "?")
    except (httpx.HTTPError, ValueError) as exc:
        return Check(
            "server",
            "ollama",
            None,
            f"no Ollama server at {host} ({type(exc).__name__})",
            "--to ollama deploys (llama.cpp serves the same GGUF without it)",
            "start one with `ollama serve`, or set OLLAMA_HOST",
        )
    return Check("server", "ollama", True, f"Ollama {version} at {host}")


def _runners(refresh: bool) -> list[Check]:
    """Each runner says what it needs to start a job (SkyPilot: its interpreter, a bucket,
    enabled clouds), as `sky check` asks each cloud."""
    from providers.runners import all_runners

    return [check for runner in all_runners() for check in runner.checks(refresh)]


def _credentials() -> list[Check]:
    out = []
    for provider, needs in credentials_needed().items():
        unmet = [n for n in needs if not any(os.environ.get(var, "").strip() for var in n)]
        names = [" or ".join(n) for n in needs]
        if not unmet:
            out.append(Check("credentials", provider, True, f"{', '.join(names)} set"))
            continue
        missing = [" or ".join(n) for n in unmet]
        out.append(
            Check(
                "credentials",
                provider,
                None,
                f"{', '.join(missing)} not set",
                f"launching on {provider}" if provider != "hf hub" else "gated hub models",
                f"export {unmet[0][0]}=...",
            )
        )
    return out


def _home() -> Check:
    from gateway.catalog import tunegate_home

    home = tunegate_home()
    if not home.exists():
        return Check("home", "tunegate home", True, f"{home} (not created yet)")
    size = _size(home)
    free = _free(home)
    ok = free is None or free > 2 * 2**30
    return Check(
        "home",
        "tunegate home",
        ok,
        f"{home}: {_human(size)} used" + (f", {_human(free)} free" if free is not None else ""),
        "" if ok else "exports and training checkpoints (less than 2 GB free)",
        "" if ok else "free disk space, or set TUNEGATE_HOME to a larger disk",
    )


def _store() -> Check:
    """Where the journal lives and whether it answers: the file, or the shared PostgreSQL."""
    import time

    from gateway.errors import TunegateError
    from gateway.journal import SCHEMA_VERSION, Journal
    from gateway.journal.db import resolve
    from gateway.journal.sql import is_url, safe_where

    target = resolve(None)
    where = safe_where(target)
    if not is_url(target) and not Path(target).exists():
        return Check("store", "store", True, f"{where} (not created yet)")
    began = time.perf_counter()
    try:
        with Journal(target) as journal:
            version = journal.version
            journal.db.execute("SELECT 1").fetchall()
            ms = (time.perf_counter() - began) * 1000
            kind = journal.db.dialect
    except TunegateError as exc:
        return Check("store", "store", False, f"{where}: {exc.message}", "the journal and the gateway",
                     exc.fix or "")  # fmt: skip
    return Check("store", "store", True, f"{kind} at {where}, schema {version}/{SCHEMA_VERSION}, "
                 f"opened and read in {ms:.0f} ms")  # fmt: skip


def _size(root: Path) -> int:
    total = 0
    for dirpath, _dirs, files in os.walk(root):
        for f in files:
            with contextlib.suppress(OSError):
                total += (Path(dirpath) / f).lstat().st_size
    return total


def _free(path: Path) -> int | None:
    import shutil

    try:
        return shutil.disk_usage(path).free
    except OSError:
        return None


def _human(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GB"
