import os
import stat

from gateway.catalog.hardware import detect, machine_hardware, what_if


def _fake_tool(tmp_path, name, output):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    tool = bin_dir / name
    tool.write_text(f"#!/bin/sh\ncat <<'OUT'\n{output}\nOUT\n")
    tool.chmod(tool.stat().st_mode | stat.S_IEXEC)
    return bin_dir


def test_detects_nvidia_gpus_from_nvidia_smi(tmp_path, monkeypatch, catalog):
    bin_dir = _fake_tool(
        tmp_path, "nvidia-smi", "NVIDIA H100 80GB HBM3, 81559\nNVIDIA H100 80GB HBM3, 81559"
    )
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    machine = detect(catalog)
    assert machine.kind == "nvidia" and machine.hardware_id == "h100-80gb" and machine.gpus == 2
    assert 80 < machine.gpu_memory_gb < 90


def test_a100_memory_picks_the_right_variant(tmp_path, monkeypatch, catalog):
    bin_dir = _fake_tool(tmp_path, "nvidia-smi", "NVIDIA A100-SXM4-40GB, 40960")
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    assert detect(catalog).hardware_id == "a100-40gb"


def test_unknown_gpu_falls_back_with_a_note(tmp_path, monkeypatch, catalog):
    bin_dir = _fake_tool(tmp_path, "nvidia-smi", "NVIDIA RTX A6000, 49140")
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    machine = detect(catalog)
    assert machine.kind == "nvidia" and machine.notes


def test_no_accelerator_means_cpu_with_real_cores_and_ram(tmp_path, monkeypatch, catalog):
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    machine = detect(catalog)
    assert machine.kind == "cpu" and machine.hardware_id == "cpu"
    assert machine.cores >= 1 and machine.ram_gb > 1
    hw = machine_hardware(catalog, machine)
    assert hw.peak_tflops == 0.1 * machine.cores and hw.memory_gb == machine.ram_gb


def test_what_if(catalog):
    mac = what_if(catalog, "m2-ultra-192gb")
    assert mac.kind == "apple" and not mac.detected and mac.ram_gb == 192
