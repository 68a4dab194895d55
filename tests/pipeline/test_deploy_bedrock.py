"""Bedrock Custom Model Import end to end: a LoRA merged (and verified) into the tiny Llama,
uploaded to S3 (moto, over HTTP) with checksums, imported, and answered through Converse by the
imported weights themselves; then removed."""

from __future__ import annotations

import importlib.util
import json
import time

import pytest

pytest.importorskip("boto3")
pytest.importorskip("moto.server")
pytest.importorskip("peft")

from gateway.errors import ExportError
from gateway.facade.deploy import chat, deploy, undeploy
from tests.fakes.bedrock_api import BUCKET, BedrockFake
from tests.support.tiny_models import lora_adapter

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
    _through_the_gateway(dep, reply.text)
    assert undeploy(dep.id).state == "removed" and not fake.imported


def _through_the_gateway(dep, text: str) -> None:
    """`tunegate serve` answers for the import through Converse, shaped as OpenAI's API, and
    meters Converse's token counts."""
    if importlib.util.find_spec("starlette") is None or importlib.util.find_spec("openai") is None:
        return
    import openai

    from gateway.journal.serving import ServeStore
    from gateway.serve import running

    with running() as url:
        client = openai.OpenAI(base_url=url, api_key="x", max_retries=0)
        got = client.chat.completions.create(model="tiny-ft", messages=QUESTION, max_tokens=8)
        assert got.choices[0].message.content == text and got.usage.completion_tokens > 0
        chunks = list(
            client.chat.completions.create(
                model="tiny-ft", messages=QUESTION, max_tokens=8, stream=True
            )
        )
        assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == text
        with pytest.raises(openai.BadRequestError, match="chat completions only"):
            client.completions.create(model="tiny-ft", prompt="for", max_tokens=8)
    deadline = time.monotonic() + 5
    while True:
        with ServeStore() as store:
            rows = store.usage()
        if len(rows) >= 3 or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert [r.status for r in rows] == [200, 200, 400]
    assert rows[0].prompt_tokens == got.usage.prompt_tokens and not rows[0].estimated


def test_unsupported_architecture_is_refused(fake, tmp_path):
    folder = tmp_path / "phi"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"model_type": "phi3"}))
    (folder / "model.safetensors").write_bytes(b"x")
    with pytest.raises(ExportError, match="does not take phi3"):
        deploy(str(folder), "bedrock")
    assert not fake.imports
