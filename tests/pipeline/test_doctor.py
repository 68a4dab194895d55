"""`tunegate doctor`: what this machine can do, with the fix for each missing piece; credentials
by name only. The base-install case runs in a real venv that has no extras."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from cli.main import main
from gateway.facade.doctor import doctor

ROOT = Path(__file__).resolve().parents[2]
JAIL = ROOT / "tests" / "jail"
SECRET = "sk-doctor-test-4f9a1c2e7b"


def _by_name(checks):
    return {(c["area"], c["name"]): c for c in checks}


def test_credentials_by_name_never_value(monkeypatch):
    monkeypatch.setenv("TOGETHER_API_KEY", SECRET)
    monkeypatch.setenv("FIREWORKS_API_KEY", SECRET + "x")  # account id still missing
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET + "y")
    for args in (["doctor"], ["doctor", "--json"]):
        res = CliRunner().invoke(main, args)
        assert res.exit_code == 0, res.output
        assert SECRET not in res.output
    checks = _by_name(json.loads(CliRunner().invoke(main, ["doctor", "--json"]).output)["checks"])
    assert checks["credentials", "together"]["ok"] is True
    fw = checks["credentials", "fireworks"]
    assert fw["ok"] is None and "FIREWORKS_ACCOUNT_ID not set" in fw["detail"]
    assert "FIREWORKS_API_KEY" not in fw["detail"]  # that one is set
    assert checks["credentials", "openai"]["fix"].startswith("export OPENAI_API_KEY=")


def test_ollama_reachable_and_not(tmp_path):
    pytest.importorskip("ollama")
    from tests.fakes.ollama_api import OllamaFake

    with OllamaFake(tmp_path / "blobs") as fake:
        up = next(c for c in doctor(ollama_host=fake.host) if c.area == "server")
    assert up.ok is True and OllamaFake.VERSION in up.detail
    down = next(c for c in doctor(ollama_host="http://127.0.0.1:9") if c.area == "server")
    assert down.ok is None and "ollama serve" in down.fix and "127.0.0.1:9" in down.detail


def test_extras_present_in_the_test_venv():
    """`make test` installs every extra but unsloth: doctor must see them, and their engines."""
    pytest.importorskip("llama_cpp")
    pytest.importorskip("mlx_lm")
    checks = {(c.area, c.name): c for c in doctor(ollama_host="http://127.0.0.1:9")}
    for extra in ("local", "gguf", "mlx", "together", "fireworks", "openai", "bedrock", "data"):
        assert checks["extra", extra].ok is True, checks["extra", extra]
    assert checks["engine", "llama.cpp"].ok is True
    assert (
        checks["engine", "mlx-lm"].ok is True and "cpu" in checks["engine", "mlx-lm"].detail.lower()
    )
    assert checks["python", "python"].ok is True
    home = checks["home", "tunegate home"]
    assert os.environ["TUNEGATE_HOME"] in home.detail


@pytest.fixture(scope="module")
def base_venv(tmp_path_factory, wheelhouse):
    """tunegate installed from a wheel of this checkout, with no extras at all (its
    dependencies from the wheelhouse `make test` filled: no index is reached)."""
    venv = tmp_path_factory.mktemp("base-venv") / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    py = venv / "bin" / "python"
    offline = ["--no-index", "--find-links", str(wheelhouse), "--disable-pip-version-check"]
    res = subprocess.run(
        [str(py), "-m", "pip", "install", "--quiet", *offline, str(ROOT)],
        capture_output=True,
        text=True,
    )
    if res.returncode:
        pytest.fail(f"base install failed:\n{res.stdout}\n{res.stderr}")
    return venv


def _run(venv: Path, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["PYTHONPATH"] = str(JAIL)  # the jail only, not the checkout: the installed package runs
    env["TOGETHER_API_KEY"] = SECRET
    return subprocess.run(
        [str(venv / "bin" / "tunegate"), *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd or venv,  # not the checkout: only the installed package is importable
        timeout=120,
    )


@pytest.mark.slow
def test_doctor_in_a_base_install(base_venv):
    res = _run(base_venv, "doctor", "--json")
    assert res.returncode == 0, res.stderr
    assert SECRET not in res.stdout + res.stderr
    checks = _by_name(json.loads(res.stdout)["checks"])
    local = checks["extra", "local"]
    assert local["ok"] is False and "torch" in local["detail"]
    assert local["fix"].startswith("pip install 'tunegate[local]'") and local["blocks"]
    assert checks["extra", "gguf"]["fix"].startswith("pip install 'tunegate[gguf]'")
    assert checks["engine", "llama.cpp"]["ok"] is False
    assert checks["engine", "mlx-lm"]["ok"] is False
    assert checks["credentials", "together"]["ok"] is True
    human = _run(base_venv, "doctor")
    assert human.returncode == 0 and "MISS" in human.stdout and "fix:" in human.stdout
    assert SECRET not in human.stdout + human.stderr


@pytest.mark.slow
def test_base_install_plans_and_names_the_extra_it_lacks(base_venv, tmp_path):
    job = ROOT / "examples" / "brand-voice" / "job.yaml"
    plan = _run(base_venv, "plan", str(job))
    assert plan.returncode == 0, plan.stderr
    assert "tunegate doctor" in plan.stdout  # the refusals point to it
    # exporting needs the ML extras: one line naming the extra, no traceback
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text('{"base_model_name_or_path": "x", "r": 8}')
    res = _run(base_venv, "export", str(adapter), "--to", "gguf")
    assert res.returncode == 1, res.stdout + res.stderr
    assert "Traceback" not in res.stderr
    assert "pip install 'tunegate[" in res.stderr
    assert len(res.stderr.strip().splitlines()) <= 2  # the error and its fix
