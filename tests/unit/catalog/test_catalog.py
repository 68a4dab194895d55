import json

import pytest
import yaml

from gateway.catalog import load_catalog
from gateway.errors import CatalogError, UnknownModelError

REQUIRED_MODELS = [
    "meta-llama/Llama-3.1-8B",
    "meta-llama/Llama-3.1-70B",
    "meta-llama/Llama-3.2-1B",
    "meta-llama/Llama-3.2-3B",
    "meta-llama/Llama-2-7b-hf",
    "Qwen/Qwen3-0.6B",
    "Qwen/Qwen3-1.7B",
    "Qwen/Qwen3-4B",
    "Qwen/Qwen3-8B",
    "Qwen/Qwen3-14B",
    "Qwen/Qwen3-32B",
    "Qwen/Qwen2.5-7B",
    "Qwen/Qwen2.5-14B",
    "Qwen/Qwen2.5-72B",
    "mistralai/Mistral-7B-v0.3",
    "google/gemma-3-4b-pt",
    "google/gemma-3-12b-pt",
    "google/gemma-3-27b-pt",
    "openai/gpt-oss-20b",
    "HuggingFaceTB/SmolLM2-135M",
    "HuggingFaceTB/SmolLM2-360M",
    "HuggingFaceTB/SmolLM2-1.7B",
    "gpt-4.1",
    "gpt-4.1-mini",
    "gpt-4.1-nano",
    "gpt-4o-mini",
]
REQUIRED_HARDWARE = [
    "t4-16gb",
    "a10g-24gb",
    "l4-24gb",
    "rtx3090-24gb",
    "rtx4090-24gb",
    "rtx5090-32gb",
    "a100-40gb",
    "a100-80gb",
    "h100-80gb",
    "h200-141gb",
    "m2-max-96gb",
    "m2-ultra-192gb",
    "m3-max-128gb",
    "m4-max-128gb",
    "cpu",
]


def test_required_models_and_hardware_present(catalog):
    for name in REQUIRED_MODELS:
        assert catalog.model(name)
    assert set(REQUIRED_HARDWARE) <= set(catalog.hardware)


@pytest.mark.parametrize("name", REQUIRED_MODELS[:22])
def test_architecture_matches_published_parameter_count(catalog, name):
    m = catalog.model(name)
    computed = m.arch_params / 1e9 + m.vision_params_b
    assert computed == pytest.approx(m.params_b, rel=0.01), (
        f"{name}: architecture gives {computed:.3f}B"
    )


def test_base_instruct_and_alias_resolve_to_one_model(catalog):
    base = catalog.model("meta-llama/Llama-3.1-8B")
    assert catalog.model("meta-llama/Llama-3.1-8B-Instruct") is base
    assert catalog.model("llama-3.1-8b") is base
    assert catalog.model("META-LLAMA/Meta-Llama-3.1-8B-Instruct") is base
    assert catalog.model("unsloth/Llama-3.2-1B-Instruct-bnb-4bit").id == "meta-llama/Llama-3.2-1B"


def test_every_price_and_measurement_has_source_and_date(catalog):
    assert catalog.unsourced() == []
    for hw in catalog.hardware.values():
        for rent in hw.rent:
            assert rent.source and rent.as_of


def test_unknown_model_error_says_how_to_add_it(catalog):
    with pytest.raises(UnknownModelError) as err:
        catalog.model("acme/NotAModel-7B")
    text = str(err.value)
    assert (
        "acme/NotAModel-7B" in text and "models.yaml" in text and "huggingface-cli download" in text
    )


def test_unknown_model_read_from_local_hf_cache(tmp_path, monkeypatch):
    snap = tmp_path / "hf-cache" / "models--acme--Tiny-1B" / "snapshots" / "abc123"
    snap.mkdir(parents=True)
    (snap / "config.json").write_text(
        json.dumps(
            {
                "architectures": ["LlamaForCausalLM"],
                "model_type": "llama",
                "hidden_size": 2048,
                "intermediate_size": 5632,
                "num_hidden_layers": 22,
                "num_attention_heads": 32,
                "num_key_value_heads": 4,
                "vocab_size": 32000,
                "max_position_embeddings": 2048,
                "tie_word_embeddings": False,
            }
        )
    )
    model = load_catalog().model("acme/Tiny-1B")
    assert model.layers == 22 and model.kv_heads == 4 and model.chat_template == "llama3"
    assert 1.0e9 < model.n_params < 1.2e9  # TinyLlama-shaped: 1.1B


def test_user_override_changes_a_price_and_adds_a_model(tmp_path):
    home = tmp_path / "tg-home" / "catalog"
    home.mkdir(parents=True)
    (home / "prices.yaml").write_text(yaml.safe_dump({"electricity": {"usd_per_kwh": 0.40}}))
    (home / "models.yaml").write_text(
        yaml.safe_dump(
            {
                "models": [
                    {
                        "id": "acme/House-3B",
                        "layers": 28,
                        "hidden": 3072,
                        "intermediate": 8192,
                        "heads": 24,
                        "kv_heads": 8,
                        "vocab": 128256,
                        "context": 8192,
                        "tie_embeddings": True,
                        "chat_template": "llama3",
                    }
                ]
            }
        )
    )
    catalog = load_catalog()
    assert catalog.prices["electricity"]["usd_per_kwh"] == 0.40
    assert catalog.prices["electricity"]["source"]  # merged, not replaced
    assert catalog.model("acme/House-3B").layers == 28
    assert catalog.model("meta-llama/Llama-3.1-8B")  # bundled models still there
    assert len(catalog.overrides) == 2


def test_bad_override_names_the_file_and_key(tmp_path):
    home = tmp_path / "tg-home" / "catalog"
    home.mkdir(parents=True)
    (home / "hardware.yaml").write_text(
        yaml.safe_dump({"hardware": {"my-gpu": {"name": "x", "vendor": "amd"}}})
    )
    with pytest.raises(CatalogError) as err:
        load_catalog()
    assert "hardware.yaml" in str(err.value) and "my-gpu" in str(err.value)
