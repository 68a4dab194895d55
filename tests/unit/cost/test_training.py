import pytest

from gateway.catalog.hf_config import model_from_config
from gateway.cost.training import (
    flops_per_token,
    lora_param_count,
    tokens_per_second,
    training_memory,
)
from gateway.spec import JobSpec
from gateway.spec.presets import resolve


def _spec(model_id, **kw):
    """A resolved spec (the estimator takes only those): the job's values, presets for the rest."""
    from gateway.catalog import load_catalog

    return resolve(JobSpec(base_model=model_id, **kw), model=load_catalog().model(model_id))[0]


def test_lora_parameter_count_llama_3_1_8b(catalog):
    # the number in the issue: r=16 on all seven linear projections of 32 layers
    assert lora_param_count(catalog.model("meta-llama/Llama-3.1-8B"), 16) == 41_943_040


def test_lora_parameter_count_qwen3_8b_and_partial_targets(catalog):
    qwen = catalog.model("Qwen/Qwen3-8B")
    per_layer = 16 * ((4096 + 4096) * 2 + (4096 + 1024) * 2 + (4096 + 12288) * 3)
    assert lora_param_count(qwen, 16) == per_layer * 36 == 43_646_976
    smol = catalog.model("HuggingFaceTB/SmolLM2-135M")
    assert lora_param_count(smol, 8, ["q_proj", "v_proj"]) == 8 * ((576 + 576) + (576 + 192)) * 30


@pytest.mark.parametrize(
    "config",
    [
        # Llama: head_dim = hidden / heads, grouped KV
        {
            "model_type": "llama",
            "architectures": ["LlamaForCausalLM"],
            "hidden_size": 64,
            "intermediate_size": 176,
            "num_hidden_layers": 3,
            "num_attention_heads": 4,
            "num_key_value_heads": 2,
            "vocab_size": 300,
        },
        # Qwen3: explicit head_dim different from hidden / heads
        {
            "model_type": "qwen3",
            "architectures": ["Qwen3ForCausalLM"],
            "hidden_size": 64,
            "intermediate_size": 96,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "num_key_value_heads": 2,
            "head_dim": 32,
            "vocab_size": 300,
        },
    ],
)
def test_lora_count_matches_real_peft(config):
    """The closed-form count equals what PEFT actually creates on the same architecture."""
    transformers = pytest.importorskip("transformers")
    peft = pytest.importorskip("peft")
    hf_config = transformers.AutoConfig.for_model(**config)
    model = transformers.AutoModelForCausalLM.from_config(hf_config)
    lora = peft.LoraConfig(r=8, lora_alpha=16, target_modules="all-linear", task_type="CAUSAL_LM")
    peft_model = peft.get_peft_model(model, lora)
    trainable = sum(p.numel() for p in peft_model.parameters() if p.requires_grad)
    info = model_from_config("tiny", config, source="test")
    assert lora_param_count(info, 8) == trainable


def test_flops_model_full_lora_checkpointing_dpo(catalog):
    m = catalog.model("meta-llama/Llama-3.1-8B")
    cal = catalog.calibration
    lora = flops_per_token(_spec(m.id, training={"gradient_checkpointing": False}), m, cal, 1)
    full = flops_per_token(
        _spec(m.id, method="full", training={"gradient_checkpointing": False}), m, cal, 1
    )
    ckpt = flops_per_token(_spec(m.id, training={"gradient_checkpointing": True}), m, cal, 1)
    dpo = flops_per_token(
        _spec(m.id, objective="dpo", training={"gradient_checkpointing": False}), m, cal, 1
    )
    assert full / lora == pytest.approx(6 / 4, rel=1e-3)
    assert ckpt / lora == pytest.approx(4 / 3, rel=1e-3)
    assert dpo / lora == pytest.approx(6 / 4, rel=1e-3)  # + reference forward (2N)
    assert lora == pytest.approx(4 * m.n_params, rel=1e-3)


def _measured(catalog, kind):
    return [m for m in catalog.calibration["measured"] if kind in m]


def test_training_time_within_2x_of_measured_throughput(catalog):
    checked = 0
    for m in _measured(catalog, "tok_s"):
        model = catalog.model(m["model"])
        spec = _spec(
            model.id,
            method=m["method"],
            lora={"rank": 16, "layers": m.get("lora_layers")},
            training={"gradient_checkpointing": m["gradient_checkpointing"], "max_seq_len": 1024},
        )
        spec, _ = resolve(spec, model=model)
        rate = tokens_per_second(
            spec, model, catalog.hw(m["hardware"]), m["stack"], catalog.calibration, 1024
        )
        ratio = rate.likely / m["tok_s"]
        assert 0.5 <= ratio <= 2.0, f"{m}: estimated {rate.likely:.0f} tok/s ({ratio:.2f}x)"
        checked += 1
    assert checked >= 6


def test_vram_within_35_percent_of_unsloth_minimums(catalog):
    rows = _measured(catalog, "vram_gb")
    assert {catalog.model(r["model"]).id for r in rows} >= {
        "meta-llama/Llama-3.1-8B",
        "Qwen/Qwen3-14B",
        "meta-llama/Llama-3.1-70B",
    }
    for row in rows:
        model = catalog.model(row["model"])
        spec = _spec(
            model.id,
            method="qlora",
            lora={"rank": 16},
            training={
                "max_seq_len": row["seq_len"],
                "batch_size": 1,
                "gradient_checkpointing": True,
            },
        )
        total, parts = training_memory(
            spec, model, catalog.hw("h100-80gb"), "unsloth", catalog.calibration
        )
        assert abs(total.likely / row["vram_gb"] - 1) <= 0.35, (
            f"{model.id}: {total.likely:.1f} GB vs {row['vram_gb']} GB ({parts})"
        )
        assert total.low <= total.likely <= total.high


def test_memory_grows_with_context_and_full_finetuning_costs_more(catalog):
    m = catalog.model("meta-llama/Llama-3.1-8B")
    hw = catalog.hw("h100-80gb")
    short, _ = training_memory(
        _spec(m.id, method="lora", training={"max_seq_len": 512, "batch_size": 1}),
        m,
        hw,
        "hf",
        catalog.calibration,
    )
    long, _ = training_memory(
        _spec(m.id, method="lora", training={"max_seq_len": 8192, "batch_size": 1}),
        m,
        hw,
        "hf",
        catalog.calibration,
    )
    full, _ = training_memory(
        _spec(m.id, method="full", training={"max_seq_len": 512, "batch_size": 1}),
        m,
        hw,
        "hf",
        catalog.calibration,
    )
    qlora, _ = training_memory(
        _spec(m.id, method="qlora", training={"max_seq_len": 512, "batch_size": 1}),
        m,
        hw,
        "hf",
        catalog.calibration,
    )
    assert long.likely > short.likely > qlora.likely
    # bf16 weights + bf16 grads + 8-bit AdamW states = 6 bytes per parameter
    assert 6 * m.n_params / 1e9 < full.likely < 6 * m.n_params / 1e9 + 8
    # 16-bit weights of an 8B model alone are ~16 GB
    assert 16 < short.likely < 24
