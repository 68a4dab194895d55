"""Local training with Unsloth: one NVIDIA GPU, LoRA/QLoRA/DoRA, its own memory savings."""

from __future__ import annotations

from gateway.catalog.schema import Hardware
from gateway.offer import Offer, PlanContext
from providers._local import local_offers


def _support(hw: Hardware, ctx: PlanContext) -> str | None:
    if hw.vendor != "nvidia":
        return f"Unsloth needs an NVIDIA GPU ({hw.id} has none)"
    if ctx.spec.method == "full":
        return "tunegate runs full fine-tuning with local (TRL+PEFT), not Unsloth"
    return None


class Unsloth:
    name = "unsloth"
    kind = "local"

    def offers(self, ctx: PlanContext) -> list[Offer]:
        return local_offers(ctx, self.name, "unsloth", _support)
