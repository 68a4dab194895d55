"""Local training with TRL + PEFT: any machine (NVIDIA, Apple MPS, CPU); QLoRA needs CUDA."""

from __future__ import annotations

from gateway.catalog.schema import Hardware
from gateway.offer import Offer, PlanContext
from providers._local import local_offers


def _support(hw: Hardware, ctx: PlanContext) -> str | None:
    if ctx.spec.method == "qlora" and hw.vendor != "nvidia":
        return f"QLoRA needs bitsandbytes on an NVIDIA GPU ({hw.id} has none); use method: lora"
    return None


class LocalHF:
    name = "local"
    kind = "local"

    def offers(self, ctx: PlanContext) -> list[Offer]:
        return local_offers(ctx, self.name, "hf", _support)
