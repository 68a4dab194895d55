"""Local training with Unsloth: one NVIDIA GPU, LoRA/QLoRA/DoRA, its own memory savings.

Training runs in `providers.unsloth.worker` (same contract and TRL loop as `local`, with the model
loaded and wrapped by Unsloth's FastLanguageModel)."""

from __future__ import annotations

from gateway.catalog.schema import Hardware
from gateway.cost.offer import Offer, PlanContext
from providers._local import local_offers
from providers._local_jobs import LocalJobs


def _support(hw: Hardware, ctx: PlanContext) -> str | None:
    if hw.vendor != "nvidia":
        return f"Unsloth needs an NVIDIA GPU ({hw.id} has none)"
    if ctx.spec.method == "full":
        return "tunegate runs full fine-tuning with local (TRL+PEFT), not Unsloth"
    return None


class Unsloth(LocalJobs):
    name = "unsloth"
    kind = "local"
    worker = "providers.unsloth.worker"
    requires = ("unsloth", "trl", "peft")

    def offers(self, ctx: PlanContext) -> list[Offer]:
        return local_offers(ctx, self.name, "unsloth", _support)
