"""Training estimates as pure functions: LoRA size, FLOPs, tokens/s, hours and memory.

Every result is a `Range` and carries the assumptions behind it. The formulas and the numbers
they take from `catalog/calibration.yaml` are documented in docs/estimates.md.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from gateway.catalog import Catalog
from gateway.catalog.schema import Hardware, ModelInfo
from gateway.data.report import DatasetReport
from gateway.spec import ResolvedSpec
from gateway.spec.objectives import FACTS
from gateway.util.units import GB, Range

Stack = Literal["hf", "unsloth", "mlx"]
SetupKind = Literal["local", "rented"]


@dataclass
class TrainingEstimate:
    """What one training run on one machine costs in time and memory."""

    tokens: Range  # tokens processed over all epochs (padding and DPO pairs included)
    flops_per_token: float
    tokens_per_second: Range
    hours: Range
    memory_gb: Range
    memory_parts_gb: dict[str, float] = field(default_factory=dict)
    assumptions: list[str] = field(default_factory=list)


def lora_param_count(
    model: ModelInfo, rank: int, targets: str | list[str] = "all-linear", layers: int | None = None
) -> int:
    """Exact trainable LoRA parameters: sum of r*(d_in + d_out) over adapted projections."""
    shapes = model.linear_shapes()
    names = list(shapes) if targets == "all-linear" else [t for t in targets if t in shapes]
    per_layer = sum(rank * (shapes[n][0] + shapes[n][1]) * shapes[n][2] for n in names)
    return per_layer * (min(layers, model.layers) if layers else model.layers)


def trained_layers(spec: ResolvedSpec, model: ModelInfo) -> int:
    return (
        min(spec.lora.layers, model.layers)
        if spec.lora.layers and spec.uses_adapter
        else model.layers
    )


def processed_tokens(spec: ResolvedSpec, report: DatasetReport, cal: dict[str, Any]) -> Range:
    """Tokens the trainer processes: dataset x epochs, padded unless packing is on."""
    epochs = spec.training.epochs
    base = report.total_tokens * epochs
    if FACTS[spec.objective].generates:
        base = epochs * report.examples * _grpo_tokens(spec, report, cal)
    if spec.training.packing:
        return Range.of(base)
    return Range.of(cal["flops"]["padding_waste_without_packing"]) * base


def flops_per_token(
    spec: ResolvedSpec, model: ModelInfo, cal: dict[str, Any], seq_len: float
) -> float:
    """Training FLOPs per processed token (DPO: per token of either sequence of a pair)."""
    f = cal["flops"]
    n = model.n_active
    if spec.method == "full":
        per_param = f["full_per_param"]
    else:
        # frozen layers below the lowest adapted one need no backward pass at all
        frac = trained_layers(spec, model) / model.layers
        per_param = 2 + (f["lora_per_param"] - 2) * frac
    attention = 2 * model.layers * seq_len * model.heads * model.head_size  # forward only
    flops = per_param * n + 3 * attention
    if spec.training.gradient_checkpointing:
        flops *= f["grad_ckpt_multiplier"]
    if FACTS[spec.objective].reference:
        flops += f["dpo_reference_forward_per_param"] * n + attention
    return flops


def _mfu(stack: Stack, hw: Hardware, cal: dict[str, Any]) -> Range:
    conf = cal["stacks"][stack]
    if hw.vendor == "cpu":
        return Range.of(conf.get("cpu_mfu", conf["mfu"]))
    return Range.of(conf["mfu"])


def tokens_per_second(
    spec: ResolvedSpec,
    model: ModelInfo,
    hw: Hardware,
    stack: Stack,
    cal: dict[str, Any],
    seq_len: float,
    n_gpus: int = 1,
) -> Range:
    """Training throughput from peak FLOPs x utilisation, slowed by QLoRA dequant and DoRA."""
    fpt = flops_per_token(spec, model, cal, seq_len)
    conf = cal["stacks"][stack]
    rate = _mfu(stack, hw, cal) * (hw.peak_tflops * 1e12 * n_gpus / fpt)
    if spec.method == "qlora":
        rate = rate * Range.of(conf["qlora_time_factor"]).inverse()
    if spec.method == "dora":
        rate = rate * Range.of(conf["dora_time_factor"]).inverse()
    return rate


def _weight_bytes(hw: Hardware) -> int:
    return 4 if hw.vendor == "cpu" else 2


def training_memory(
    spec: ResolvedSpec, model: ModelInfo, hw: Hardware, stack: Stack, cal: dict[str, Any]
) -> tuple[Range, dict[str, float]]:
    """Peak accelerator memory (RAM on CPU) in GB, with the likely breakdown by part."""
    mem = cal["memory"]
    wb = _weight_bytes(hw)
    seq = spec.training.max_seq_len
    batch = spec.training.batch_size
    pairs = FACTS[spec.objective].sequences
    emb = model.embedding_params
    linear = model.n_params - emb
    if spec.method == "qlora":
        weights = Range.of(mem["nf4_bytes_per_param"]) * linear + emb * 2
    else:
        weights = Range.of(model.n_params * wb)
    opt = mem["optimizer_bytes_per_param"].get(spec.training.optimizer, 2)
    if spec.uses_adapter:
        tw = 4 if hw.vendor == "cpu" else cal["stacks"][stack]["trainable_weight_bytes"]
        n_train = lora_param_count(
            model, spec.lora.rank, spec.lora.target_modules, spec.lora.layers
        )
        trainable = n_train * (2 * tw + opt)
        if spec.method == "dora":  # DoRA materialises W + BA of one projection to take its norm
            trainable += max(i * o for i, o, _ in model.linear_shapes().values()) * 4 * 2
    else:
        states = 2 * wb if opt == 8 else opt  # torch AdamW keeps states in the parameter dtype
        trainable = model.n_params * (wb + states)
        if FACTS[spec.objective].reference:
            trainable += model.n_params * wb  # frozen reference copy
    h, layers = model.hidden, model.layers
    flash = hw.vendor == "nvidia"
    attn = 0 if flash else mem["attention_scores_bytes"] * model.heads * seq
    if stack == "unsloth":
        per_token = mem["checkpointed_bytes_per_token_layer"] * h * layers
    elif spec.training.gradient_checkpointing:
        per_token = (
            mem["checkpointed_bytes_per_token_layer"] * h * layers
            + mem["activation_bytes_per_token_layer"] * h
            + attn
        )
    else:
        per_token = (mem["activation_bytes_per_token_layer"] * h + attn) * layers
    act_scale = wb / 2
    activations = per_token * seq * batch * pairs * act_scale
    logits_bytes = 8 if hw.vendor == "cpu" else cal["stacks"][stack]["logits_bytes"]
    logits = batch * seq * model.vocab * logits_bytes * pairs
    body = weights + (trainable + activations + logits)
    total = (body * Range.of(mem["fragmentation"])) / GB + Range.of(mem["runtime_overhead_gb"])
    parts = {
        "weights": weights.likely / GB,
        "trainable_and_optimizer": trainable / GB,
        "activations": activations / GB,
        "logits": logits / GB,
        "runtime_overhead": Range.of(mem["runtime_overhead_gb"]).likely,
    }
    return total, parts


def _grpo_tokens(spec: ResolvedSpec, report: DatasetReport, cal: dict[str, Any]) -> float:
    """Per prompt: a group of completions sampled token by token (decoding, slower than
    training per token), then trained on with the prompt."""
    g, length = spec.training.grpo_generations, spec.training.grpo_max_completion
    decode = Range.of(cal["flops"]["decode_token_cost"]).likely
    return g * (report.avg_tokens + length * (1 + decode))


def estimate_training(
    spec: ResolvedSpec,
    model: ModelInfo,
    report: DatasetReport,
    hw: Hardware,
    stack: Stack,
    catalog: Catalog,
    setup: SetupKind = "local",
) -> TrainingEstimate:
    """Time and memory for one run of `spec` on `hw` with the given software stack."""
    cal = catalog.calibration
    tokens = processed_tokens(spec, report, cal)
    seq = spec.training.max_seq_len
    seq_len = min(seq, report.avg_tokens or seq)
    fpt = flops_per_token(spec, model, cal, seq_len)
    rate = tokens_per_second(spec, model, hw, stack, cal, seq_len)
    train_s = tokens * rate.inverse()
    evals = spec.training.n_evals * report.validation_tokens
    eval_s = rate.inverse() * (evals / 3)  # forward only: a third of a training step's FLOPs
    hours = (train_s + eval_s) / 3600 + Range.of(cal["setup_hours"][setup])
    memory, parts = training_memory(spec, model, hw, stack, cal)
    conf = cal["stacks"][stack]
    mfu = _mfu(stack, hw, cal)
    assumptions = [
        f"{conf['label']}: {mfu.likely:.0%} of {hw.peak_tflops:g} TFLOPS peak ({mfu.low:.0%}-{mfu.high:.0%})",
        f"{fpt / model.n_active:.1f} FLOPs per active parameter per token"
        + (" (gradient checkpointing)" if spec.training.gradient_checkpointing else ""),
    ]
    if not spec.training.packing:
        pad = Range.of(cal["flops"]["padding_waste_without_packing"]) + -1.0
        assumptions.append(
            f"packing off: padding adds {pad.low:.0%}-{pad.high:.0%} (likely {pad.likely:.0%}) tokens"
        )
    if FACTS[spec.objective].generates:
        t = spec.training
        assumptions.append(
            f"GRPO: {t.grpo_generations} completions of up to {t.grpo_max_completion} tokens per "
            f"prompt, each generated token costing ~{Range.of(cal['flops']['decode_token_cost']).likely:g} training tokens of time"
        )
    if spec.method == "qlora":
        assumptions.append(
            f"QLoRA dequantisation slows {conf['label']} by x{Range.of(conf['qlora_time_factor']).likely:g}"
        )
    return TrainingEstimate(tokens, fpt, rate, hours, memory, parts, assumptions)
