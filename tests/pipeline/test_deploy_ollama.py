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


def _finished(journal, base, adapter):
    """A succeeded local job whose artifact is `adapter`, as `tunegate train` leaves one."""
    rec = journal.record_intent("local", "sft", str(base), {"base_model": str(base), "name": "t"})
    journal.update(rec.id, state="succeeded")
    journal.add_artifact(rec.id, "adapter", str(adapter))
    return rec


def test_deploying_a_job_exports_it_first(tiny_sp, tmp_path, converter_cache, monkeypatch):
    """A job with only an adapter is exported to a verified q4_k_m GGUF, then deployed (in an
    engine of its own: joining its base's engine is tests/pipeline/test_engine_group.py)."""
    from gateway.journal import Journal
    from tests.support.tiny_models import lora_adapter

    monkeypatch.setenv("TUNEGATE_CACHE_DIR", str(converter_cache))
    journal = Journal()
    rec = _finished(journal, tiny_sp, lora_adapter(tiny_sp, tmp_path / "a", r=8, lora_alpha=16))
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


def test_a_job_whose_q4_fails_deploys_at_the_smallest_quant_that_verifies(
    tiny_sp, tmp_path, converter_cache, monkeypatch
):
    """An adapter planted large enough that 4 bits loses it (top-1 agreement ~0.46 < 0.8 here):
    the deploy climbs q4_k_m → q5_k_m → ... and deploys the first that verifies, saying why
    each smaller one failed; only that one is the job's artifact."""
    from gateway.journal import Journal
    from tests.support.tiny_models import lora_adapter

    monkeypatch.setenv("TUNEGATE_CACHE_DIR", str(converter_cache))
    journal = Journal()
    rec = _finished(journal, tiny_sp, lora_adapter(tiny_sp, tmp_path / "adapter", scale=3.5))
    dep = deploy(rec.id, "llamacpp", name="loud", engine="own", journal=journal)
    notes = dep.meta["export_notes"]
    assert notes[0].startswith("q4_k_m failed verification: next-token agreement")
    chosen = notes[-1].rsplit(" ", 1)[1]
    assert chosen in ("q5_k_m", "q6_k", "q8_0", "f16") and dep.endpoint.endswith(f"-{chosen}.gguf")
    assert len(notes) == 1 + ("q5_k_m", "q6_k", "q8_0", "f16").index(chosen) + 1
    gguf = [a for a in journal.artifacts(rec.id) if a["kind"] == "gguf"]
    assert len(gguf) == 1 and gguf[0]["meta"]["verified"] and gguf[0]["meta"]["gguf_type"] == chosen
    failed = list(Path(gguf[0]["uri"]).parent.parent.glob("*q4_k_m*.unverified"))
    assert failed and (failed[0] / "export.json").is_file()  # the evidence is kept
    events = [e.message for e in journal.events(rec.id) if e.kind == "export"]
    assert any("q4_k_m failed verification" in m for m in events)
    assert chat(dep.id, "What does the for statement do?", max_tokens=4, journal=journal).text
