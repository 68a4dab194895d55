"""JobSpec: everything a fine-tuning job needs, validated at the boundary.

A spec comes from YAML (`JobSpec.from_yaml`) or from code. Unset hyperparameters stay `None`
until `gateway.spec.presets.resolve` fills them, recording where each value came from, so nothing is
left to a backend's silent default.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from gateway.errors import SpecError
from gateway.spec.choices import METHODS, SCORERS, TASKS
from gateway.util.units import parse_count
from gateway.util.yaml_lines import describe, read_yaml, spec_error

Method = Literal[METHODS]  # type: ignore[valid-type]
Objective = Literal["sft", "dpo", "kto", "orpo", "grpo"]  # == gateway.spec.objectives.OBJECTIVES
Task = Literal[TASKS]  # type: ignore[valid-type]
# equals providers.NAMES (tests/unit/test_registries.py): the core cannot import providers
ProviderName = Literal["local", "unsloth", "mlx", "together", "fireworks", "openai", "bedrock"]
PROVIDER_NAMES: tuple[str, ...] = ProviderName.__args__  # type: ignore[attr-defined]


Scheduler = Literal["cosine", "linear", "constant", "constant_with_warmup"]
Optimizer = Literal["adamw_8bit", "paged_adamw_8bit", "adamw", "adamw_torch", "adafactor", "sgd"]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class LoraConfig(_Section):
    rank: int | None = Field(None, ge=1, le=1024)
    alpha: float | None = Field(None, gt=0)
    dropout: float | None = Field(None, ge=0, lt=1)
    target_modules: Literal["all-linear"] | list[str] | None = None
    rslora: bool = False
    layers: int | None = Field(None, ge=1, description="train only the last N layers (MLX-style)")


class TrainingConfig(_Section):
    learning_rate: float | None = Field(None, gt=0, lt=1)
    epochs: float | None = Field(None, gt=0, le=100)
    batch_size: int | None = Field(None, ge=1, le=4096)
    grad_accum: int | None = Field(None, ge=1, le=4096)
    max_seq_len: int | None = Field(None, ge=16, le=1_048_576)
    warmup_ratio: float | None = Field(None, ge=0, le=0.5)
    scheduler: Scheduler | None = None
    optimizer: Optimizer | None = None
    gradient_checkpointing: bool | None = None
    packing: bool | None = None
    seed: int = 42
    early_stopping_patience: int | None = Field(None, ge=1)
    n_evals: int | None = Field(None, ge=0, le=100)
    checkpoint_minutes: float | None = Field(
        None, ge=0, le=1440, description="most training time a crash may lose (0: every log step)"
    )
    dpo_beta: float | None = Field(
        None, gt=0, le=10, description="beta of the DPO, KTO and ORPO losses"
    )
    grpo_generations: int | None = Field(None, ge=2, le=64, description="GRPO group size")
    grpo_max_completion: int | None = Field(
        None, ge=1, le=32768, description="GRPO: longest sampled completion, in tokens"
    )
    learning_rate_multiplier: float | None = Field(
        None, gt=0, le=100, description="scales the default learning rate (OpenAI's own on OpenAI)"
    )


class ServingConfig(_Section):
    tokens_per_day: int = Field(0, ge=0)
    horizon_days: float = Field(30, gt=0, le=3650)
    always_on: bool = True
    output_share: float = Field(
        0.25, ge=0, le=1, description="share of served tokens that are generated"
    )
    shared_with: int = Field(
        0,
        ge=0,
        le=10_000,
        description="other fine-tunes of this base served from the same fleet (engine groups), "
        "each at this volume unless tunegate serve measured theirs",
    )

    @field_validator("tokens_per_day", mode="before")
    @classmethod
    def _count(cls, v: Any) -> int:
        return parse_count(v) if v is not None else 0


class Constraints(_Section):
    local_only: bool = False
    max_usd: float | None = Field(None, gt=0)
    deadline_hours: float | None = Field(None, gt=0)
    providers: list[ProviderName] | None = None


class ResourcesConfig(_Section):
    """What the job runs on, beyond one GPU: several GPUs (torchrun), nodes (Axolotl), and a
    rented cloud through SkyPilot (docs/scale-out.md). Left open, the plan decides."""

    gpus: int | None = Field(None, ge=1, le=64, description="GPUs per node")
    nodes: int = Field(1, ge=1, le=64)
    processes: int | None = Field(
        None, ge=1, le=64, description="training processes per node (default: one per GPU)"
    )
    cloud: str | None = Field(None, description="SkyPilot infra: aws, gcp, runpod, lambda, ...")
    spot: bool = False
    shard: bool = Field(False, description="shard the model across the GPUs (FSDP2)")
    launcher: Literal["auto", "trl", "axolotl"] = "auto"


# these literals equal exporters.formats (tests/unit/test_registries.py); the core cannot import it
GgufType = Literal[
    "f32", "f16", "bf16", "q8_0", "q4_k_m", "q4_k_s", "q5_k_m", "q5_k_s", "q6_k", "q3_k_m", "q4_0"
]
MlxType = Literal["float32", "float16", "bfloat16", "q8", "q6", "q4", "q3"]
ExportTarget = Literal["merged", "gguf", "mlx"]


class ExportConfig(_Section):
    """Where the result is going; `tunegate export --check` and the plan check it up front."""

    to: ExportTarget = "gguf"
    quant: GgufType | MlxType | None = None
    group_size: Literal[32, 64, 128] = 64  # MLX quantization groups
    adapter_only: bool = False

    @model_validator(mode="after")
    def _quant_fits(self) -> ExportConfig:
        mlx = self.quant in MlxType.__args__  # type: ignore[attr-defined]
        if self.quant and (self.to == "mlx") != mlx:
            raise ValueError(f"quant {self.quant!r} is not a {self.to} type")
        return self


BASELINE = re.compile(r"few-shot:([1-9]|[1-5]\d|6[0-4])|system:.+")


class EvalConfig(_Section):
    """`eval:` in a job file: the task eval run once the job succeeds, the lm-eval regression
    if a suite is named, and the gate every export of the job must pass (docs/eval.md).
    `eval: FILE` is short for `eval: {data: FILE}`."""

    data: Path | None = Field(None, description="held-out chat examples; default: validation")
    scorer: Literal[SCORERS] = "exact"  # type: ignore[valid-type]
    pattern: str | None = None
    json_schema: Path | None = None
    limit: int | None = Field(None, ge=1)
    max_tokens: int = Field(128, ge=1, le=32768)
    suite: str | None = Field(None, description="quick | standard | an lm-eval task YAML")
    baselines: list[str] = Field(
        default_factory=list,
        description="prompt arms on the base: few-shot:K (K training examples), system:FILE",
    )
    export_max_drop: float | None = Field(
        3.0,
        ge=0,
        le=100,
        description="points an export may lose against the adapter; null: no gate",
    )

    @model_validator(mode="after")
    def _scorer_has_what_it_needs(self) -> EvalConfig:
        if self.scorer == "regex" and not self.pattern:
            raise ValueError("scorer regex needs `pattern`")
        if self.pattern is not None and self.scorer != "regex":
            raise ValueError(f"`pattern` is for scorer regex (this eval uses {self.scorer})")
        if self.json_schema is not None and self.scorer != "json":
            raise ValueError(f"`json_schema` is for scorer json (this eval uses {self.scorer})")
        for baseline in self.baselines:
            if not BASELINE.fullmatch(baseline):
                raise ValueError(
                    f"baseline {baseline!r}: expected few-shot:K (K from 1 to 64) or system:FILE"
                )
        return self


class BedrockJobConfig(_Section):
    """Per-job Bedrock settings; the IAM role comes from the user config (gateway.catalog.config)."""

    s3_uri: str | None = Field(None, pattern=r"^s3://[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9](/.*)?$")
    region: str | None = None


class JobSpec(_Section):
    """A fine-tuning job: base model, data, method, hyperparameters, serving, constraints."""

    base_model: str
    task: Task = "sft"
    train: Path | None = None
    validation: Path | None = None
    eval: EvalConfig | None = None
    method: Method = "lora"
    objective: Objective = "sft"
    lora: LoraConfig = Field(default_factory=LoraConfig)
    training: TrainingConfig = Field(default_factory=TrainingConfig)
    serving: ServingConfig = Field(default_factory=ServingConfig)
    constraints: Constraints = Field(default_factory=Constraints)
    resources: ResourcesConfig = Field(default_factory=ResourcesConfig)
    export: ExportConfig | None = None
    bedrock: BedrockJobConfig | None = None
    axolotl: dict[str, Any] | None = Field(
        None, description="extra Axolotl config keys (the Axolotl route; checked by name)"
    )
    name: str | None = None
    rewards: list[str] = Field(
        default_factory=list,
        description="GRPO reward functions: built-in names or module:function",
    )

    @field_validator("eval", mode="before")
    @classmethod
    def _eval_file_shorthand(cls, value: Any) -> Any:
        return {"data": value} if isinstance(value, str | Path) else value

    @model_validator(mode="after")
    def _rewards_fit_objective(self) -> JobSpec:
        from gateway.spec.rewards import name_problem

        if self.objective == "grpo" and not self.rewards:
            raise ValueError(
                "objective grpo needs `rewards: [...]` (built-in: exact_match, contains, "
                "word_f1, json_valid, regex(PATTERN), json_schema(FILE); or module:function)"
            )
        if self.rewards and self.objective != "grpo":
            raise ValueError(f"`rewards` are for objective grpo (this job is {self.objective})")
        for name in self.rewards:
            problem = name_problem(name)
            if problem:
                raise ValueError(problem)
        return self

    @property
    def uses_adapter(self) -> bool:
        return self.method != "full"

    @classmethod
    def from_yaml(cls, path: str | Path, relative_to: Path | None = None) -> JobSpec:
        """Load a job file; errors name the file, the line, the key and the allowed values.
        Relative data paths are taken from the file's folder, or `relative_to` (an upload)."""
        path = Path(path)
        text, data = read_yaml(path, "job file", "base_model, train, method, ...")
        try:
            spec = cls.model_validate(data)
        except ValidationError as exc:
            raise spec_error(exc, path, text, JobSpec) from None
        base = relative_to or path.parent

        def near(value: Path | None) -> Path | None:
            return base / value if value is not None and not value.is_absolute() else value

        updates: dict[str, Any] = {
            "train": near(spec.train),
            "validation": near(spec.validation),
        }
        if spec.eval is not None:
            suite = spec.eval.suite
            if suite and suite not in ("quick", "standard") and not Path(suite).is_absolute():
                suite = str(base / suite)
            updates["eval"] = spec.eval.model_copy(
                update={
                    "data": near(spec.eval.data),
                    "json_schema": near(spec.eval.json_schema),
                    "suite": suite,
                    "baselines": [_near_baseline(b, base) for b in spec.eval.baselines],
                }
            )
        return spec.model_copy(update=updates)

    def with_overrides(self, patch: dict[str, Any]) -> JobSpec:
        """A copy with `patch` applied section by section (e.g. command-line options on a job file)."""
        data = self.model_dump(exclude_unset=True)
        for key, value in patch.items():
            data[key] = {**data.get(key, {}), **value} if isinstance(value, dict) else value
        return JobSpec.from_dict(data, where="options")

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str = "options") -> JobSpec:
        """Validate a mapping; errors name the key path, like the YAML loader's."""
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            lines = [
                f"{'.'.join(map(str, e['loc']))}: {describe(e, JobSpec)}" for e in exc.errors()
            ]
            raise SpecError(f"invalid {where}: " + "; ".join(lines)) from None

    @classmethod
    def from_options(cls, job: str | Path | None = None, **options: Any) -> JobSpec:
        """A job file (if any) with options on top, or a spec from options alone (`base` at
        least): what `tunegate plan`/`train` flags build. Option names are the CLI's
        (`base`, `rank`, `serve`, `providers="a,b"`, ...; see `OPTION_KEYS`); None is unset."""
        patch = option_patch(options)
        if job is not None:
            return cls.from_yaml(job).with_overrides(patch)
        if "base_model" not in patch:
            raise SpecError(
                "give a job file or --base MODEL",
                fix="e.g. tunegate plan --base Qwen/Qwen3-8B --examples 5000 --avg-tokens 600",
            )
        return cls.from_dict(patch)

    def to_yaml_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude_none=False)


def _near_baseline(baseline: str, base: Path) -> str:
    """`system:FILE` with a relative FILE taken from the job file's folder."""
    kind, _, arg = baseline.partition(":")
    if kind == "system" and not Path(arg).expanduser().is_absolute():
        return f"system:{base / arg}"
    return baseline


class ResolvedTraining(TrainingConfig):
    """Training settings with every value decided, so no backend supplies its own default.

    `gradient_checkpointing` alone may stay None here: it trades time for memory, so each
    local offer decides it from its own memory estimate, and the launched job records the
    chosen offer's decision (`Offer.settings`)."""

    learning_rate: float = Field(gt=0, lt=1)
    epochs: float = Field(gt=0, le=100)
    batch_size: int = Field(ge=1, le=4096)
    grad_accum: int = Field(ge=1, le=4096)
    max_seq_len: int = Field(ge=16, le=1_048_576)
    warmup_ratio: float = Field(ge=0, le=0.5)
    scheduler: Scheduler
    optimizer: Optimizer
    packing: bool
    n_evals: int = Field(ge=0, le=100)
    checkpoint_minutes: float = Field(10.0, ge=0, le=1440)  # a job journaled before it existed
    dpo_beta: float = Field(gt=0, le=10)
    grpo_generations: int = Field(ge=2, le=64)
    grpo_max_completion: int = Field(ge=1, le=32768)


class ResolvedSpec(JobSpec):
    """What `gateway.spec.presets.resolve` returns and every backend receives: a `JobSpec` whose
    hyperparameters are all set, each recorded with where it came from. LoRA values are set
    for every adapter method (a full fine-tune has none to set)."""

    training: ResolvedTraining

    @model_validator(mode="after")
    def _adapter_is_total(self) -> ResolvedSpec:
        if self.uses_adapter:
            unset = [
                k
                for k in ("rank", "alpha", "dropout", "target_modules")
                if getattr(self.lora, k) is None
            ]
            if unset:
                raise ValueError(f"lora {', '.join(unset)} unset in a resolved spec")
        return self


# option name -> (section or "" for top level, spec key)
OPTION_KEYS: dict[str, tuple[str, str]] = {
    "base": ("", "base_model"),
    "method": ("", "method"),
    "objective": ("", "objective"),
    "task": ("", "task"),
    "rank": ("lora", "rank"),
    "alpha": ("lora", "alpha"),
    "epochs": ("training", "epochs"),
    "max_seq_len": ("training", "max_seq_len"),
    "batch_size": ("training", "batch_size"),
    "packing": ("training", "packing"),
    "serve": ("serving", "tokens_per_day"),
    "horizon_days": ("serving", "horizon_days"),
    "always_on": ("serving", "always_on"),
    "share_with": ("serving", "shared_with"),
    "local_only": ("constraints", "local_only"),
    "max_usd": ("constraints", "max_usd"),
    "deadline_hours": ("constraints", "deadline_hours"),
}


def option_patch(options: dict[str, Any]) -> dict[str, Any]:
    """Options as a nested JobSpec patch (only what was given; other names are ignored)."""
    patch: dict[str, Any] = {}
    for opt, (section, key) in OPTION_KEYS.items():
        value = options.get(opt)
        if value is None:
            continue
        if section:
            patch.setdefault(section, {})[key] = value
        else:
            patch[key] = value
    if options.get("rewards"):
        patch["rewards"] = list(options["rewards"])
    if options.get("providers"):
        names = [p.strip() for p in str(options["providers"]).split(",") if p.strip()]
        patch.setdefault("constraints", {})["providers"] = names
    return patch
