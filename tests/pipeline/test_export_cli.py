"""`tunegate export` and `export --check` through the CLI, and the plan's export findings."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from cli.main import main


def _job(tmp_path: Path, base: str, **export) -> Path:
    job = tmp_path / "job.yaml"
    spec = {"base_model": base, "method": export.pop("method", "lora"), "export": export}
    job.write_text(yaml.safe_dump(spec))
    return job


def test_plan_shows_export_findings_without_ml_imports(tmp_path) -> None:
    job = _job(
        tmp_path,
        "meta-llama/Llama-3.1-8B-Instruct",
        to="gguf",
        quant="q4_k_m",
        adapter_only=True,
        method="dora",
    )
    code = textwrap.dedent(f"""
        import sys, json
        from click.testing import CliRunner
        from cli.main import main
        out = CliRunner().invoke(main, ["plan", {str(job)!r}, "--examples", "1000",
                                        "--avg-tokens", "500", "--json"])
        assert out.exit_code == 0, out.output
        check = json.loads(out.output)["export_check"]
        print(json.dumps(check))
        heavy = ("torch", "transformers", "llama_cpp", "peft", "numpy", "httpx")
        print(sorted(m for m in sys.modules if m.split(".")[0] in heavy))
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    check_line, imported = out.stdout.strip().splitlines()[-2:]
    assert imported == "[]"
    check = json.loads(check_line)
    assert check["ok"] is False
    assert any(f["check"] == "adapter" and "DoRA" in f["detail"] for f in check["findings"])
    assert any(f["check"] == "chat template" and f["ok"] for f in check["findings"])


@pytest.mark.slow
def test_export_check_on_a_local_model(tiny_sp, tmp_path, converter_cache, monkeypatch) -> None:
    pytest.importorskip("llama_cpp")
    monkeypatch.setenv("TUNEGATE_CACHE_DIR", str(converter_cache))
    job = _job(tmp_path, str(tiny_sp), to="gguf", quant="q4_k_m")
    out = CliRunner().invoke(main, ["export", "--check", str(job), "--json"])
    assert out.exit_code == 0, out.output
    found = {f["check"]: f for f in json.loads(out.stdout)["findings"]}
    assert found["architecture"]["ok"] and found["tokenizer"]["ok"]
    assert found["end of turn"]["ok"] and "<|im_end|>" in found["end of turn"]["detail"]
    assert found["ollama template"]["ok"] and "chatml" in found["ollama template"]["detail"]
    # a base whose template ends turns with a token that is not an EOS: refused up front
    broken = tmp_path / "broken"
    import shutil

    shutil.copytree(tiny_sp, broken)
    cfg = json.loads((broken / "tokenizer_config.json").read_text())
    (broken / "tokenizer_config.json").write_text(json.dumps({**cfg, "eos_token": "</s>"}))
    gen = json.loads((broken / "generation_config.json").read_text())
    (broken / "generation_config.json").write_text(json.dumps({**gen, "eos_token_id": 2}))
    cfg_model = json.loads((broken / "config.json").read_text())
    (broken / "config.json").write_text(json.dumps({**cfg_model, "eos_token_id": 2}))
    out = CliRunner().invoke(main, ["export", "--check", str(_job(tmp_path, str(broken)))])
    assert out.exit_code == 1
    assert "FAIL end of turn" in out.output and "would not stop" in out.output


@pytest.mark.slow
def test_export_cli_end_to_end(tiny_sp, tmp_path, converter_cache, monkeypatch) -> None:
    pytest.importorskip("llama_cpp")
    pytest.importorskip("peft")
    from tests.support.tiny_models import lora_adapter

    monkeypatch.setenv("TUNEGATE_CACHE_DIR", str(converter_cache))
    adapter = lora_adapter(tiny_sp, tmp_path / "adapter", r=4, lora_alpha=8)
    out = CliRunner().invoke(
        main,
        [
            "export",
            str(adapter),
            "--to",
            "gguf",
            "--quant",
            "q8_0",
            "--out",
            str(tmp_path / "gguf"),
            "--json",
        ],
    )
    assert out.exit_code == 0, out.output
    data = json.loads(out.stdout)
    assert data["verification"]["passed"] and data["kind"] == "gguf"
    assert Path(data["files"][0]).is_file()
    merged = CliRunner().invoke(
        main, ["export", str(adapter), "--to", "merged", "--out", str(tmp_path / "merged")]
    )
    assert merged.exit_code == 0, merged.output
    assert "verified: top-1 agreement 1.000" in merged.output
    assert (tmp_path / "merged" / "tokenizer.model").is_file()


def test_export_errors_are_one_message(tmp_path) -> None:
    out = CliRunner().invoke(main, ["export", str(tmp_path)])
    assert out.exit_code == 1 and "neither a PEFT adapter nor an HF model" in out.output
    assert "Traceback" not in out.output
    out = CliRunner().invoke(main, ["export"])
    assert out.exit_code == 2 and "--check" in out.output


@pytest.mark.slow
def test_export_check_for_mlx(tiny_sp, tmp_path) -> None:
    pytest.importorskip("mlx_lm")
    job = _job(tmp_path, str(tiny_sp), to="mlx", quant="q4")
    out = CliRunner().invoke(main, ["export", "--check", str(job), "--json"])
    assert out.exit_code == 0, out.output
    found = {f["check"]: f for f in json.loads(out.stdout)["findings"]}
    assert found["mlx-lm"]["ok"] and found["architecture"]["ok"] and found["quant"]["ok"]
    # a model type mlx-lm lacks, and rows the groups cannot divide, are refused up front
    import shutil

    odd = tmp_path / "odd"
    shutil.copytree(tiny_sp, odd)
    cfg = json.loads((odd / "config.json").read_text())
    (odd / "config.json").write_text(
        json.dumps({**cfg, "model_type": "no_such_arch", "hidden_size": 200})
    )
    out = CliRunner().invoke(
        main, ["export", "--check", str(_job(tmp_path, str(odd), to="mlx", quant="q4")), "--json"]
    )
    assert out.exit_code == 1
    found = {f["check"]: f for f in json.loads(out.stdout)["findings"]}
    assert (
        found["architecture"]["ok"] is False and "no_such_arch" in found["architecture"]["detail"]
    )
    assert found["quant"]["ok"] is False and "group size 64" in found["quant"]["detail"]
    # a GGUF quant type under `to: mlx` is a job-file error with its line
    bad = _job(tmp_path, str(tiny_sp), to="mlx", quant="q4_k_m")
    out = CliRunner().invoke(main, ["export", "--check", str(bad)])
    assert out.exit_code == 1 and "not a mlx type" in out.output and "Traceback" not in out.output
