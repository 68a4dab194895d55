"""Offers: one way to run a job (provider x hardware), priced for training and serving.

An infeasible offer stays in the plan with its reasons: nothing is dropped silently.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from gateway.catalog import Catalog
from gateway.catalog.hardware import Machine
from gateway.catalog.schema import ModelInfo
from gateway.data.report import DatasetReport
from gateway.spec import ResolvedSpec
from gateway.util.units import DAYS_PER_MONTH, Range


@dataclass
class PlanContext:
    """Everything a provider needs to price a job; built once per plan."""

    catalog: Catalog
    spec: ResolvedSpec  # every hyperparameter set (gradient checkpointing: per offer)
    model: ModelInfo
    report: DatasetReport
    machine: Machine
    env: Mapping[str, str]
    origin: Mapping[str, str] = field(default_factory=dict)  # spec key -> "job" | "cli" | rule

    def user_set(self, key: str) -> bool:
        """Whether `key` (e.g. "training.epochs") came from the user, not a preset or rule."""
        return self.origin.get(key) in ("job", "cli")

    @property
    def context_tokens(self) -> int:
        """Typical request length when serving (prompt + answer), for KV-cache sizing."""
        from gateway.cost.serving import serving_context

        return serving_context(self.spec.training.max_seq_len, self.report.avg_tokens)


NOT_LAUNCHABLE = "not launchable from here"  # how an offer's `needs` says it
RENTED = "rented"  # the kind of an offer on rented GPUs (SkyPilot)


@dataclass
class Offer:
    provider: str  # local | unsloth | mlx | together | fireworks | openai | bedrock
    kind: str  # local | rented | hosted
    hardware: str | None
    train_usd: Range
    train_hours: Range
    serve_usd_month: Range
    horizon_days: float
    model_id: str | None = None
    vram_gb: Range | None = None
    memory_available_gb: float | None = None
    tokens_per_second: Range | None = None
    # what the FLOPs model said, kept when a measurement on this machine replaced it
    modelled_tokens_per_second: Range | None = None
    model_params_b: float | None = None  # the base's size, for measurements by size class
    billed_tokens: float | None = None
    serve: str = ""
    serve_usd_per_1m: float | None = None
    cloud: str | None = None
    gpus: int = 1  # of `hardware`, in one node (rented offers that shard the model)
    reasons: list[str] = field(default_factory=list)
    needs: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    assumptions: list[str] = field(default_factory=list)
    # settings this offer decided for the job ("training.gradient_checkpointing": False, ...):
    # launching the offer records them in the journaled spec, with `why` as their origin
    settings: dict[str, Any] = field(default_factory=dict)
    settings_why: dict[str, str] = field(default_factory=dict)

    @property
    def feasible(self) -> bool:
        return not self.reasons

    @property
    def launchable(self) -> bool:
        """Whether `tunegate train` can start it from here (a feasible offer that is not is
        priced as advice and ranked after every one that is)."""
        return not any(n.startswith(NOT_LAUNCHABLE) for n in self.needs)

    @property
    def reason(self) -> str:
        return "; ".join(self.reasons)

    @property
    def total_usd(self) -> Range:
        return self.train_usd + self.serve_usd_month * (self.horizon_days / DAYS_PER_MONTH)

    @property
    def where(self) -> str:
        """What it runs on: `rtx4090-24gb (runpod)`, `2 x h100-80gb (aws)`, or `hosted`."""
        where = self.hardware or "hosted"
        if self.gpus > 1:
            where = f"{self.gpus} x {where}"
        return where + (f" ({self.cloud})" if self.cloud else "")

    @property
    def label(self) -> str:
        return f"{self.provider} on {self.where}"

    def refuse(self, reason: str) -> Offer:
        if reason not in self.reasons:
            self.reasons.append(reason)
        return self

    def to_json(self) -> dict[str, Any]:
        return {
            "provider": self.provider,
            "hardware": self.hardware,
            "gpus": self.gpus,
            "kind": self.kind,
            "cloud": self.cloud,
            "model_id": self.model_id,
            "feasible": self.feasible,
            "reason": self.reason or None,
            "train_usd": self.train_usd.to_json(),
            "train_hours": self.train_hours.to_json(),
            "serve_usd_month": self.serve_usd_month.to_json(),
            "total_usd": self.total_usd.to_json(),
            "vram_gb": self.vram_gb.to_json(3) if self.vram_gb else None,
            "memory_available_gb": round(self.memory_available_gb, 1)
            if self.memory_available_gb
            else None,
            "tokens_per_second": self.tokens_per_second.to_json(3)
            if self.tokens_per_second
            else None,
            "billed_tokens": round(self.billed_tokens) if self.billed_tokens is not None else None,
            "serve": self.serve,
            "serve_usd_per_1m": self.serve_usd_per_1m,
            "needs": self.needs,
            "notes": self.notes,
            "assumptions": self.assumptions,
            **({"settings": self.settings} if self.settings else {}),
            **(
                {"modelled_tokens_per_second": self.modelled_tokens_per_second.to_json(3)}
                if self.modelled_tokens_per_second
                else {}
            ),
            **({"model_params_b": self.model_params_b} if self.model_params_b else {}),
        }
