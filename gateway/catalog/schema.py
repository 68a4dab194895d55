"""The catalog's file format, validated with pydantic: a typo in a user override is an error
that names the file and the key, never a silent zero."""

from __future__ import annotations

import math
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Confidence = Literal["V", "S", "R", "D"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class HostedId(_Strict):
    """Where and under which id a hosted provider tunes a model."""

    id: str
    serverless_lora: bool = False
    full: bool = False
    region: str | None = None
    provisioned_model_units: int = 1
    confidence: Confidence = "R"
    source: str = ""


class ModelInfo(_Strict):
    """A base model: architecture numbers for the estimates, template family, hosted ids."""

    id: str
    variants: list[str] = Field(default_factory=list)
    aliases: list[str] = Field(default_factory=list)
    closed: bool = False
    architecture: str | None = None
    params_b: float | None = None
    active_params_b: float | None = None
    vision_params_b: float = 0.0
    experts: int | None = None
    experts_per_token: int | None = None
    layers: int = 0
    hidden: int = 0
    intermediate: int = 0
    heads: int = 0
    kv_heads: int = 0
    head_dim: int | None = None
    vocab: int = 0
    context: int = 0
    tie_embeddings: bool = False
    chat_template: str | None = None
    source: str = ""
    notes: str = ""
    hosted: dict[str, HostedId] = Field(default_factory=dict)

    @property
    def head_size(self) -> int:
        return self.head_dim or (self.hidden // self.heads if self.heads else 0)

    @property
    def embedding_params(self) -> int:
        """Input embedding plus output head (once when tied): kept 16-bit under QLoRA."""
        return self.vocab * self.hidden * (1 if self.tie_embeddings else 2)

    def linear_shapes(self) -> dict[str, tuple[int, int, int]]:
        """Per-layer linear projections as name -> (d_in, d_out, copies per layer)."""
        q_out = self.heads * self.head_size
        kv_out = self.kv_heads * self.head_size
        experts = self.experts or 1
        return {
            "q_proj": (self.hidden, q_out, 1),
            "k_proj": (self.hidden, kv_out, 1),
            "v_proj": (self.hidden, kv_out, 1),
            "o_proj": (q_out, self.hidden, 1),
            "gate_proj": (self.hidden, self.intermediate, experts),
            "up_proj": (self.hidden, self.intermediate, experts),
            "down_proj": (self.intermediate, self.hidden, experts),
        }

    @property
    def linear_params(self) -> int:
        """Parameters in the transformer blocks' linear layers (what QLoRA stores in 4 bits)."""
        per_layer = sum(i * o * n for i, o, n in self.linear_shapes().values())
        return per_layer * self.layers

    @property
    def arch_params(self) -> int:
        """Parameter count computed from the architecture (text tower only, norms ignored)."""
        return self.linear_params + self.embedding_params

    @property
    def n_params(self) -> float:
        """Total parameters held in memory (published count when known)."""
        if self.params_b:
            return self.params_b * 1e9
        return float(self.arch_params)

    @property
    def n_active(self) -> float:
        """Parameters touched per token: what the FLOPs model counts (MoE: active experts only)."""
        if self.active_params_b:
            return self.active_params_b * 1e9
        return self.n_params

    @property
    def kv_bytes_per_token(self) -> int:
        """16-bit K and V cache for one token across all layers."""
        return 2 * self.layers * self.kv_heads * self.head_size * 2

    @property
    def size_b(self) -> float:
        """Size in billions used for price bands."""
        return self.n_params / 1e9 if not self.closed else math.inf

    def all_names(self) -> list[str]:
        return [self.id, *self.variants, *self.aliases]


class RentOffer(_Strict):
    cloud: str
    instance: str | None = None
    usd_per_hour: float
    spot_usd_per_hour: float | None = None
    as_of: str
    source: str
    confidence: Confidence


class Hardware(_Strict):
    """An accelerator (or a CPU-only machine) with the numbers the estimates need."""

    id: str = ""
    name: str
    vendor: Literal["nvidia", "apple", "cpu"]
    memory_gb: float
    peak_tflops: float
    peak_tflops_per_core: float | None = None
    bf16: bool
    bandwidth_gbs: float
    watts: float
    usable_fraction: float = 0.95
    match: list[str] = Field(default_factory=list)
    skypilot: str | None = None  # the accelerator's name in SkyPilot's catalogs
    source: str
    confidence: Confidence
    rent: list[RentOffer] = Field(default_factory=list)

    @property
    def usable_gb(self) -> float:
        return self.memory_gb * self.usable_fraction

    def cheapest_rent(self) -> RentOffer | None:
        return min(self.rent, key=lambda r: r.usd_per_hour) if self.rent else None


class ModelsFile(_Strict):
    as_of: str = ""
    models: list[ModelInfo]


class HardwareFile(_Strict):
    as_of: str = ""
    hardware: dict[str, Hardware]
