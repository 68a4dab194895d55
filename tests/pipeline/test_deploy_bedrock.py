"""Bedrock Custom Model Import end to end: a LoRA merged (and verified) into the tiny Llama,
uploaded to S3 (moto, over HTTP) with checksums, imported, and answered through Converse by the
imported weights themselves; then removed."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("boto3")
pytest.importorskip("moto.server")
pytest.importorskip("peft")

from gateway.deploy import chat, deploy, undeploy
from gateway.errors import ExportError
from tests.fakes.bedrock_api import BUCKET, BedrockFake
from tests.tiny_models import lora_adapter

pytestmark = pytest.mark.slow
QUESTION = [{"role": "user", "content": "What does the for statement do?"}]


@pytest.fixture
def fake(monkeypatch):
    with BedrockFake() as server:
        server.env(monkeypatch)
        monkeypatch.setenv("AWS_ENDPOINT_URL_BEDROCK_RUNTIME", server.bedrock_url)
        yield server


def _greedy(folder, n):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(folder).eval()
    tok = AutoTokenizer.from_pretrained(folder)
    ids = tok.apply_chat_template(QUESTION, add_generation_prompt=True, return_dict=True)[
        "input_ids"
    ]
    seq = list(ids)
    with torch.no_grad():
        for _ in range(n):
            nxt = int(model(input_ids=torch.tensor([seq])).logits[0, -1].argmax())
            if nxt == tok.eos_token_id:
                break
            seq.append(nxt)
    return tok.decode(seq[len(ids) :], skip_special_tokens=True)


def test_adapter_is_merged_imported_and_answers(fake, tiny_sp, tmp_path):
    import boto3

    adapter = lora_adapter(tiny_sp, tmp_path / "lora", r=8, lora_alpha=16)
    dep = deploy(str(adapter), "bedrock", name="tiny-ft")
    assert dep.state == "live" and dep.endpoint.startswith("arn:aws:bedrock:us-west-2:")
    assert dep.meta["architecture"] == "Llama"
    (job,) = fake.imports.values()
    assert job["roleArn"].endswith(":role/tunegate-bedrock") and job["_token"]
    s3 = boto3.client("s3", endpoint_url=fake.moto_url, region_name="us-west-2")
    keys = {
        o["Key"].rsplit("/", 1)[-1]
        for o in s3.list_objects_v2(Bucket=BUCKET, Prefix="tunegate/imports/tiny-ft/")["Contents"]
    }
    assert {"config.json", "tokenizer.model", "tokenizer_config.json"} <= keys
    assert any(k.endswith(".safetensors") for k in keys)
    reply = chat(dep.id, QUESTION, max_tokens=8)
    # the imported weights are the merged fine-tune: Converse answers what it answers locally
    merged_folder = next(tmp_path.glob("lora-merged*"))
    assert reply.text == _greedy(merged_folder, 8)
    assert reply.finish_reason in ("stop", "length") and reply.text
    assert undeploy(dep.id).state == "removed" and not fake.imported


def test_unsupported_architecture_is_refused(fake, tmp_path):
    folder = tmp_path / "phi"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"model_type": "phi3"}))
    (folder / "model.safetensors").write_bytes(b"x")
    with pytest.raises(ExportError, match="does not take phi3"):
        deploy(str(folder), "bedrock")
    assert not fake.imports
