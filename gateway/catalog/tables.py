"""The schemas of prices.yaml, calibration.yaml and rules.yaml.

User overrides merge key by key onto the bundled files, so a key the code reads can never go
missing; what can go wrong is a misspelt key (silently ignored, the old value kept) or a value
of the wrong kind (a `KeyError` or `TypeError` deep in planning). Every block is therefore
strict: unknown keys and wrong types are refused when the catalog loads, with the file and
line. Sourced blocks say where each number came from (`source`, `as_of`, `confidence`).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Confidence = Literal["V", "S", "R", "D"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Spread(_Strict):
    """A number where sources disagree: the plan carries all three."""

    low: float
    likely: float | None = None
    high: float


Num = float | Spread


class Sourced(_Strict):
    source: str
    as_of: str
    confidence: Confidence | None = None


# prices.yaml ---------------------------------------------------------------------------------
class ModelPrice(_Strict):
    usd: float | None = None
    input: float | None = None
    output: float | None = None
    confidence: Confidence | None = None


class Dedicated(_Strict):
    gpu: str
    usd_per_gpu_hour: Num
    note: str | None = None


class TrainingPrices(Sourced):
    per: str | None = None
    billed_tokens: str | None = None
    minimum_usd: float = 0.0
    bands: list[dict[str, float]] | None = None  # max_params_b + one rate per objective/method
    dpo_multiplier: float | None = None
    dpo_note: str | None = None
    models: dict[str, ModelPrice] | None = None
    storage_usd_per_month: float | None = None


class MultiLora(_Strict):
    """Several LoRA fine-tunes of one base on one deployment, as the provider offers it."""

    max_adapters: int | None = None  # None: no published limit
    note: str
    confidence: Confidence | None = None


class RouteEnd(_Strict):
    """A route the provider has announced it will close: the plan warns before the date."""

    what: str
    date: str  # YYYY-MM-DD
    source: str
    confidence: Confidence | None = None


class ServingPrices(Sourced):
    per: str | None = None
    note: str | None = None
    models: dict[str, ModelPrice] | None = None
    serverless_lora: bool | None = None
    serverless_note: str | None = None
    serverless_per_1m_tokens: dict[str, ModelPrice] | None = None
    serverless_per_1m_tokens_bands: list[dict[str, float]] | None = None
    dedicated: Dedicated | None = None
    provisioned_throughput_usd_per_mu_hour: dict[str, ModelPrice] | None = None
    storage_usd_per_month: float | None = None
    custom_model_import_usd_per_cmu_minute: float | None = None
    multi_lora: MultiLora | None = None
    ends: list[RouteEnd] = []


class Electricity(Sourced):
    usd_per_kwh: float = Field(gt=0)


class GpuBand(_Strict):
    max_params_b: float
    gpus: int = Field(ge=1)


class HostedThroughput(Sourced):
    gpu: str
    gpus_by_band: list[GpuBand]
    mfu: Num
    queue_hours: Num
    closed_model_tokens_per_second: Num


class SelfHosting(Sourced):
    concurrency: Num
    bandwidth_efficiency: float
    prefill_mfu: float
    decode_mfu_cap: float
    target_utilization: float = Field(gt=0, le=1)
    runtime_overhead_gb: float


class PricesFile(_Strict):
    as_of: str
    electricity: Electricity
    training: dict[str, TrainingPrices]
    hosted_throughput: HostedThroughput
    serving: dict[str, ServingPrices]
    self_hosting: SelfHosting


# calibration.yaml ----------------------------------------------------------------------------
class Flops(Sourced):
    full_per_param: float
    lora_per_param: float
    grad_ckpt_multiplier: float
    dpo_reference_forward_per_param: float
    padding_waste_without_packing: Num
    decode_token_cost: Num  # GRPO: one generated token, in training-token time


class Stack(Sourced):
    label: str
    mfu: Num
    cpu_mfu: Num | None = None
    qlora_time_factor: Num
    dora_time_factor: Num
    activations: Literal["checkpointed", "offloaded", "full"]
    trainable_weight_bytes: float
    logits_bytes: float


class Memory(Sourced):
    nf4_bytes_per_param: Num
    optimizer_bytes_per_param: dict[str, float]
    runtime_overhead_gb: Num
    fragmentation: Num
    activation_bytes_per_token_layer: float
    checkpointed_bytes_per_token_layer: float
    attention_scores_bytes: float


class MultiGpu(Sourced):
    efficiency: Num  # of n x one GPU's throughput
    gpu_counts: list[int]


class SetupHours(Sourced):
    local: Num
    rented: Num


class Measured(_Strict):
    """A published measurement the estimator is held to (throughput or VRAM)."""

    model: str
    stack: str
    method: str
    source: str
    confidence: Confidence | None = None
    hardware: str | None = None
    tok_s: float | None = None
    vram_gb: float | None = None
    seq_len: int | None = None
    lora_layers: int | None = None
    gradient_checkpointing: bool | None = None
    note: str | None = None


class MeasuredHere(Sourced):
    """How far a throughput measured by a finished job on this machine is trusted."""

    low: float = Field(gt=0, le=1)
    high: float = Field(ge=1)


class DutyCycle(Sourced):
    """The share of a month an owned GPU draws power while serving."""

    low: float = Field(ge=0, le=1)
    likely: float = Field(ge=0, le=1)
    high: float = Field(ge=0, le=1)


class MultiLoraOverhead(Sourced):
    """Throughput lost per replica when one engine batches several adapters' requests."""

    low: float = Field(ge=0, lt=1)
    likely: float = Field(ge=0, lt=1)
    high: float = Field(ge=0, lt=1)
    measured: list[str] = []  # runs of bench/multi_adapter.py, engine and machine named


class CalibrationFile(_Strict):
    as_of: str
    flops: Flops
    stacks: dict[str, Stack]
    memory: Memory
    multi_gpu: MultiGpu | None = None
    setup_hours: SetupHours
    measured: list[Measured]
    measured_here_band: MeasuredHere
    measured_class_band: MeasuredHere
    owned_serving_duty_cycle: DutyCycle
    multi_lora_overhead: MultiLoraOverhead


# rules.yaml ----------------------------------------------------------------------------------
class DataRules(Sourced):
    min_examples: int = Field(ge=1)
    max_examples: int | None = None
    max_bytes: int = Field(gt=0)
    roles: list[str]
    kinds: list[Literal["chat", "completion", "text", "preference", "kto"]]
    # The file as uploaded: containers the provider reads, record formats it reads as they
    # are (others need `tunegate data convert --to <convert_to>`), and per-format rules.
    containers: list[Literal["jsonl", "parquet"]]
    formats: list[str]
    convert_to: str
    parquet_columns: list[str] = []  # Parquet must be pre-tokenized with only these columns
    preference_answer_messages: int | None = None  # exactly this many messages per answer
    string_arguments: bool = False  # tool-call arguments must be JSON-encoded strings


class LoraRules(Sourced):
    min_rank: int = Field(ge=1)
    max_rank: int = Field(ge=1)
    max_dpo_beta: float | None = None  # exclusive upper bound


class NameRules(Sourced):
    max_chars: int = Field(ge=8)
    field: str


class Architectures(Sourced):
    accepts: dict[str, str]  # config.json model_type -> the provider's name for it


class HyperParam(_Strict):
    from_: str = Field(alias="from")  # the job-file key that feeds it, e.g. training.epochs
    type: Literal["int", "float"]
    min: float
    max: float
    default: float


class HyperProfile(_Strict):
    models: list[str]
    params: dict[str, HyperParam]
    source: str
    as_of: str
    confidence: Confidence | None = None


class ObjectiveRules(Sourced):
    accepts: list[Literal["sft", "dpo", "kto", "orpo", "grpo"]]
    elsewhere: str | None = None  # what the backend offers beyond these, outside tunegate


class Cutoff(Sourced):
    """When a provider stops taking new fine-tuning jobs, and when fine-tunes of each of its
    base models stop answering; dates are ISO (YYYY-MM-DD), the last day it still works."""

    no_new_jobs_after: str | None = None
    retires: dict[str, str] = {}  # the provider's base model id -> its last day
    retires_source: str | None = None
    alternatives: dict[str, list[str]] = {}  # closed model id -> open models to plan instead


class RentedCloud(Sourced):
    """A cloud a rented GPU may come from: what SkyPilot can do there for a tunegate job."""

    skypilot: bool  # SkyPilot rents from it
    mounts_buckets: bool  # the job's folder can be a mounted bucket (checkpoints survive)
    multi_node: bool
    why: str | None = None  # SkyPilot's reason for what it cannot do


class RulesFile(_Strict):
    as_of: str
    data: dict[str, DataRules]
    objectives: dict[str, ObjectiveRules]
    lora: dict[str, LoraRules]
    names: dict[str, NameRules]
    architectures: dict[str, Architectures]
    hyperparameters: dict[str, dict[str, HyperProfile]]
    cutoffs: dict[str, Cutoff] = {}
    rented_clouds: dict[str, RentedCloud] = {}
