"""What machine is this? Detected without importing torch: `nvidia-smi`, `sysctl`, /proc.

The result names a catalog hardware id where one matches, so the estimates use the same numbers
for "this machine" as for the same GPU rented.
"""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
from dataclasses import asdict, dataclass, field
from typing import Any

from gateway.catalog import Catalog
from gateway.catalog.schema import Hardware

_TIMEOUT_S = 5


@dataclass
class Machine:
    """This machine (or a what-if hardware id) as the local providers see it."""

    kind: str  # "nvidia" | "apple" | "cpu"
    hardware_id: str  # a catalog id; "cpu" when no accelerator
    name: str
    gpus: int = 0
    gpu_memory_gb: float = 0.0
    cores: int = 1
    ram_gb: float = 0.0
    detected: bool = True
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _run(cmd: list[str]) -> str | None:
    exe = shutil.which(cmd[0])
    if exe is None:
        return None
    try:
        out = subprocess.run(
            [exe, *cmd[1:]], capture_output=True, text=True, timeout=_TIMEOUT_S, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout if out.returncode == 0 else None


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _ram_gb() -> float:
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) * 1024 / 1e9
    except OSError:
        pass
    out = _run(["sysctl", "-n", "hw.memsize"])
    return int(out.strip()) / 1e9 if out and out.strip().isdigit() else 0.0


def match_hardware(catalog: Catalog, name: str, memory_gb: float) -> Hardware | None:
    """The catalog entry whose `match` patterns fit a device name, preferring the closest memory."""
    candidates = [
        hw for hw in catalog.hardware.values() if any(p.lower() in name.lower() for p in hw.match)
    ]
    if not candidates:
        return None
    return min(candidates, key=lambda hw: abs(hw.memory_gb - memory_gb) if memory_gb else 0)


def _nvidia(catalog: Catalog) -> Machine | None:
    out = _run(["nvidia-smi", "--query-gpu=name,memory.total", "--format=csv,noheader,nounits"])
    if not out or not out.strip():
        return None
    rows = [r.split(",") for r in out.strip().splitlines() if "," in r]
    if not rows:
        return None
    name = rows[0][0].strip()
    try:
        mem_gb = float(rows[0][1]) * 1024 * 1024 / 1e9  # MiB
    except ValueError:
        mem_gb = 0.0
    hw = match_hardware(catalog, name, mem_gb)
    notes = (
        []
        if hw
        else [f"'{name}' is not in the hardware catalog; estimates use the closest by memory"]
    )
    if hw is None:
        nvidia = [h for h in catalog.hardware.values() if h.vendor == "nvidia"]
        hw = min(nvidia, key=lambda h: abs(h.memory_gb - mem_gb))
    return Machine("nvidia", hw.id, name, len(rows), mem_gb, _cores(), _ram_gb(), notes=notes)


def _apple(catalog: Catalog) -> Machine | None:
    if platform.system() != "Darwin" or platform.machine() != "arm64":
        return None
    brand = (_run(["sysctl", "-n", "machdep.cpu.brand_string"]) or "Apple Silicon").strip()
    ram = _ram_gb()
    hw = match_hardware(catalog, brand, ram)
    notes = []
    if hw is None:
        apple = [h for h in catalog.hardware.values() if h.vendor == "apple"]
        hw = min(apple, key=lambda h: abs(h.memory_gb - ram))
        notes.append(f"'{brand}' is not in the hardware catalog; estimates use {hw.id}")
    return Machine("apple", hw.id, brand, 1, ram, _cores(), ram, notes=notes)


def detect(catalog: Catalog) -> Machine:
    """This machine: an NVIDIA GPU, Apple Silicon, or CPU only."""
    found = _nvidia(catalog) or _apple(catalog)
    if found:
        return found
    cores = _cores()
    return Machine(
        "cpu", "cpu", platform.processor() or platform.machine() or "CPU", 0, 0.0, cores, _ram_gb()
    )


def what_if(catalog: Catalog, hardware_id: str) -> Machine:
    """A machine with the given catalog hardware, for `tunegate plan --hardware ID`."""
    hw = catalog.hw(hardware_id)
    ram = max(hw.memory_gb, 64.0) if hw.vendor == "nvidia" else hw.memory_gb
    gpus = 0 if hw.vendor == "cpu" else 1
    return Machine(
        hw.vendor,
        hw.id,
        hw.name,
        gpus,
        hw.memory_gb if gpus else 0.0,
        _cores(),
        ram,
        detected=False,
    )


def machine_hardware(catalog: Catalog, machine: Machine) -> Hardware:
    """The catalog numbers for a machine; a CPU machine gets its own cores and RAM."""
    hw = catalog.hw(machine.hardware_id)
    if machine.kind == "cpu":
        per_core = hw.peak_tflops_per_core or 0.1
        hw = hw.model_copy(
            update={
                "peak_tflops": per_core * machine.cores,
                "memory_gb": machine.ram_gb or hw.memory_gb,
            }
        )
    return hw
