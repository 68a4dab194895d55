"""`tunegate train --backend fireworks|bedrock` -> status -> logs -> fetch, through the CLI, with
the keys checked absent from every output and every file tunegate wrote."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from cli.main import main
from tests.support.job_files import SECRET, job_file

BASE = "meta-llama/Llama-3.1-8B-Instruct"


@pytest.fixture(params=["fireworks", "bedrock"])
def backend(request, monkeypatch):
    if request.param == "fireworks":
        pytest.importorskip("fireworks")
        from tests.fakes.fireworks_api import FireworksFake

        with FireworksFake() as fake:
            fake.env(monkeypatch)
            yield request.param
    else:
        pytest.importorskip("moto.server")
        from tests.fakes.bedrock_api import BedrockFake

        with BedrockFake() as fake:
            fake.env(monkeypatch)
            yield request.param


def test_train_status_logs_fetch_without_leaking_keys(backend, tmp_path, monkeypatch):
    monkeypatch.setenv("TUNEGATE_POLL_S", "0")
    runner = CliRunner()
    job_yaml = job_file(tmp_path, BASE, n=40)
    outputs = []
    res = runner.invoke(main, ["plan", str(job_yaml), "--json"])
    assert res.exit_code == 0, res.output
    offers = {o["provider"]: o for o in json.loads(res.stdout)["offers"]}
    assert offers[backend]["feasible"], offers[backend]
    if backend == "bedrock":
        assert any("Provisioned Throughput" in n for n in offers[backend]["notes"])
    res = runner.invoke(
        main, ["train", str(job_yaml), "--backend", backend, "--yes", "--wait", "--json"]
    )
    assert res.exit_code == 0, res.output
    job = json.loads(res.stdout)
    assert job["state"] == "succeeded" and job["provider"] == backend
    outputs.append(res.output)
    for args in (
        ["status", job["id"], "--json"],
        ["status", job["id"]],
        ["logs", job["id"]],
        ["jobs", "--json"],
        ["fetch", job["id"], "--json"],
        ["fetch", job["id"]],
    ):
        res = runner.invoke(main, args)
        assert res.exit_code == 0, (args, res.output)
        outputs.append(res.output)
    art = json.loads(outputs[5])
    if backend == "fireworks":
        assert art["kind"] == "adapter" and (Path(art["uri"]) / "adapter_config.json").exists()
    else:
        assert art["kind"] == "hosted-model" and art["uri"].startswith("arn:aws:bedrock:")
    assert art["uri"] in outputs[6]
    assert "loss" in outputs[3] or backend == "fireworks"
    home = Path(os.environ["TUNEGATE_HOME"])
    for path in (p for p in home.rglob("*") if p.is_file()):
        assert SECRET.encode() not in path.read_bytes(), path
    for text in outputs:
        assert SECRET not in text
