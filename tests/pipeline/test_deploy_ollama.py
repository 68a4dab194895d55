"""Deploy and chat: a fine-tuned SmolLM2 GGUF created in an Ollama-API server (answered by
llama.cpp) through the official `ollama` client, the same GGUF in-process, and an OpenAI job's
model; the deployments journal, undeploy, and the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from cli.main import main
from gateway.errors import JobError
from gateway.facade.deploy import chat, deploy, deployments, get_deployment, undeploy

pytestmark = pytest.mark.slow

QUESTION = "What is 2 + 2?"


@pytest.fixture
def ollama_fake(tmp_path):
    pytest.importorskip("ollama")
    from tests.fakes.ollama_api import OllamaFake

    with OllamaFake(tmp_path / "ollama-blobs") as fake:
        yield fake


def test_ollama_deploy_chat_undeploy(smollm2_gguf, ollama_fake):
    gguf = smollm2_gguf.files[0]
    dep = deploy(str(gguf), "ollama", name="lumen", host=ollama_fake.host)
    assert dep.state == "live" and dep.target == "ollama" and dep.meta["family"] == "chatml"
    # the Modelfile next to the GGUF says what was sent
    modelfile = (gguf.parent / "Modelfile").read_text()
    assert modelfile.startswith(f'FROM ./{gguf.name}\nTEMPLATE """')
    assert 'PARAMETER stop "<|im_end|>"' in modelfile
    assert 'SYSTEM """You are a helpful AI assistant named SmolLM' in modelfile
    sent = ollama_fake.models["lumen"]
    assert sent["parameters"]["stop"] == ["<|im_end|>", "<|im_start|>"]
    assert sent["template"] in modelfile and sent["system"].startswith("You are a helpful AI")

    reply = chat("lumen", QUESTION)
    assert reply.finish_reason == "stop", reply.text  # ended its turn, not the token limit
    assert "4" in reply.text and "<|im_end|>" not in reply.text
    # the same GGUF in-process, formatted by llama.cpp with the GGUF's own Jinja template:
    # the Ollama TEMPLATE reproduced that prompt, so the greedy answers are identical
    local = deploy(str(gguf), "llamacpp", name="lumen-local")
    assert chat(local.id, QUESTION).text == reply.text

    again = deploy(str(gguf), "ollama", name="lumen-2", host=ollama_fake.host)
    assert ollama_fake.uploads == 1  # the blob was already there (HEAD), not sent twice
    assert {d.name for d in deployments()} == {"lumen", "lumen-local", "lumen-2"}

    gone = undeploy(dep.id[:8])
    assert gone.state == "removed" and "lumen" not in ollama_fake.models
    with pytest.raises(JobError, match="removed"):
        chat(dep.id, QUESTION)
    assert get_deployment("lumen-2").id == again.id
    assert {d.name for d in deployments()} == {"lumen-local", "lumen-2"}


def test_cli_deploy_deployments_chat_undeploy(smollm2_gguf, ollama_fake):
    runner = CliRunner()
    gguf = str(smollm2_gguf.files[0])
    res = runner.invoke(
        main,
        [
            "deploy",
            gguf,
            "--to",
            "ollama",
            "--name",
            "cli-model",
            "--host",
            ollama_fake.host,
            "--json",
        ],
    )
    assert res.exit_code == 0, res.output
    dep = json.loads(res.stdout)
    assert dep["state"] == "live" and dep["name"] == "cli-model"
    res = runner.invoke(main, ["deployments", "--json"])
    assert [d["name"] for d in json.loads(res.stdout)] == ["cli-model"]
    res = runner.invoke(main, ["chat", "cli-model", QUESTION, "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["finish_reason"] == "stop" and "4" in out["text"]
    res = runner.invoke(main, ["chat", "cli-model", QUESTION])
    assert res.exit_code == 0 and "4" in res.output
    res = runner.invoke(main, ["deployments"])
    assert "cli-model" in res.output and "ollama" in res.output
    res = runner.invoke(main, ["undeploy", "cli-model"])
    assert res.exit_code == 0 and "removed" in res.output
    assert not ollama_fake.models


def test_unreachable_ollama_is_a_clear_error(smollm2_gguf):
    pytest.importorskip("ollama")
    res = CliRunner().invoke(
        main,
        ["deploy", str(smollm2_gguf.files[0]), "--to", "ollama", "--host", "http://127.0.0.1:9"],
    )
    assert (
        res.exit_code == 1 and "cannot reach Ollama" in res.output and "ollama serve" in res.output
    )
    assert "Traceback" not in res.output
    (dep,) = deployments(all=True)
    assert dep.state == "failed"


def test_real_smollm2_template_is_recognised(smollm2_gguf):
    from exporters.chat_format import detect, gguf_chat_info

    template, bos, eos = gguf_chat_info(Path(smollm2_gguf.files[0]))
    fmt = detect(template, bos, eos)
    assert fmt.family.name == "chatml"
    assert (
        fmt.default_system == "You are a helpful AI assistant named SmolLM, trained by Hugging Face"
    )


def test_deploying_a_job_exports_it_first(tiny_sp, tmp_path, converter_cache, monkeypatch):
    """A job with only an adapter is exported to a verified q4_k_m GGUF, then deployed (in an
    engine of its own: joining its base's engine is tests/pipeline/test_engine_group.py)."""
    from gateway.journal import Journal
    from tests.support.tiny_models import lora_adapter

    monkeypatch.setenv("TUNEGATE_CACHE_DIR", str(converter_cache))
    adapter = lora_adapter(tiny_sp, tmp_path / "adapter", r=8, lora_alpha=16)
    journal = Journal()
    rec = journal.record_intent(
        "local", "sft", str(tiny_sp), {"base_model": str(tiny_sp), "name": "tiny"}
    )
    journal.update(rec.id, state="succeeded")
    journal.add_artifact(rec.id, "adapter", str(adapter))
    dep = deploy(rec.id, "llamacpp", name="tiny-local", engine="own", journal=journal)
    gguf = [a for a in journal.artifacts(rec.id) if a["kind"] == "gguf"]
    assert len(gguf) == 1 and dep.artifact_id == gguf[0]["id"]
    assert dep.endpoint.endswith("-q4_k_m.gguf") and Path(dep.endpoint).is_file()
    assert chat(dep.id, "What does the for statement do?", max_tokens=4, journal=journal).text
    again = deploy(rec.id, "llamacpp", name="tiny-local-2", engine="own", journal=journal)
    assert again.endpoint == dep.endpoint  # the export is reused, not repeated
    # to Ollama, the blob is addressed by the hash the export recorded (the fake checks it)
    from tests.fakes.ollama_api import OllamaFake

    with OllamaFake(tmp_path / "blobs") as fake:
        live = deploy(rec.id, "ollama", name="tiny", host=fake.host, journal=journal)
        assert live.state == "live" and fake.uploads == 1
        assert fake.models["tiny"]["digest"] == "sha256:" + gguf[0]["sha256"]
