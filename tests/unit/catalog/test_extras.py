"""The extras table equals pyproject.toml, and a missing optional package is one line that names
the extra, never a traceback."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest
import tomllib
from click.testing import CliRunner

from cli.main import main
from gateway.catalog.extras import EXTRAS, MODULES, from_import_error, missing, require

ROOT = Path(__file__).resolve().parents[3]


def _dist(requirement: str) -> str:
    return re.split(r"[<>=!~;\[ ]", requirement, maxsplit=1)[0].strip().lower()


def test_extras_table_equals_pyproject():
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    ours = {k: v for k, v in declared.items() if k not in ("all", "dev")}
    assert set(ours) == set(EXTRAS)
    for name, reqs in ours.items():
        assert {_dist(r) for r in reqs} == set(EXTRAS[name].packages), name
    # `all` is every extra but unsloth (NVIDIA only)
    (all_req,) = declared["all"]
    assert set(all_req.split("[")[1].rstrip("]").split(",")) == set(EXTRAS) - {"unsloth"}
    # every package of an extra is importable under a name the error table knows
    known = {(dist, extra) for dist, extra in MODULES.values()}
    for extra in EXTRAS.values():
        for dist in extra.packages:
            assert (dist, extra.name) in known, (dist, extra.name)


def test_import_error_names_the_extra():
    err = from_import_error(ModuleNotFoundError("No module named 'llama_cpp'", name="llama_cpp"))
    assert err is not None and "tunegate[gguf]" in str(err) and "llama-cpp-python" in str(err)
    sub = from_import_error(ModuleNotFoundError("x", name="transformers.models.llama"))
    assert sub is not None and "tunegate[local]" in str(sub)
    # not an optional package, or not a missing module: left alone (a real bug keeps its trace)
    assert from_import_error(ModuleNotFoundError("x", name="gateway.nothing")) is None
    assert from_import_error(ImportError("cannot import name 'x' from 'torch'")) is None


def test_require_checks_without_importing(monkeypatch):
    monkeypatch.setitem(sys.modules, "pyarrow", None)  # as if not installed
    with pytest.raises(Exception) as info:
        require("json", "pyarrow", what="Parquet input")
    assert "Parquet input needs pyarrow" in str(info.value)
    assert "pip install 'tunegate[data]'" in str(info.value)
    assert "torch==2.13.0" in str(missing("torch"))  # the pin note rides along with local


def test_cli_turns_a_missing_package_into_one_line(monkeypatch):
    """A command whose optional import fails prints `error: ...` and the install command."""
    import click

    from cli.common import handle_errors

    @click.command()
    @handle_errors
    def needs_llama() -> None:
        import llama_cpp  # noqa: F401

    monkeypatch.setitem(sys.modules, "llama_cpp", None)
    res = CliRunner().invoke(needs_llama, [])
    assert res.exit_code == 1, res.output
    assert "Traceback" not in res.output
    assert res.output.startswith("error: llama-cpp-python is needed here, which is not installed")
    assert "pip install 'tunegate[gguf]'" in res.output


def test_real_command_without_llama_cpp_is_one_line(monkeypatch, tmp_path):
    """`tunegate chat` on a llama.cpp deployment when llama-cpp-python is missing."""
    from gateway.journal import Journal

    gguf = tmp_path / "m.gguf"
    gguf.write_bytes(b"GGUF")
    Journal().add_deployment(None, "llamacpp", "m", endpoint=str(gguf), state="live", meta={})
    monkeypatch.setitem(sys.modules, "llama_cpp", None)
    res = CliRunner().invoke(main, ["chat", "m", "hello"])
    assert res.exit_code == 1 and "Traceback" not in res.output
    assert "pip install 'tunegate[gguf]'" in res.output


def test_converter_missing_a_package_names_the_extra(tmp_path):
    """llama.cpp's converter runs in a subprocess: its ModuleNotFoundError becomes the fix."""
    import os
    from types import SimpleNamespace

    from exporters.gguf import _run
    from gateway.errors import ExportError

    conv = SimpleNamespace(env=lambda: dict(os.environ), version="0.3.36")
    cmd = [sys.executable, "-c", "raise ModuleNotFoundError(\"No module named 'sentencepiece'\")"]
    with pytest.raises(ExportError) as info:
        _run(cmd, conv, tmp_path / "convert.log", "GGUF conversion")
    assert "sentencepiece" in info.value.message and "converter" in info.value.message
    assert info.value.fix.startswith("pip install 'tunegate[gguf]'")
