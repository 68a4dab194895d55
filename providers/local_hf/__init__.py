"""Local training with TRL + PEFT: any machine (NVIDIA, Apple MPS, CPU); QLoRA needs CUDA.

The training itself runs in `providers.local_hf.worker`, a detached process (see
`providers.jobdir` for the contract)."""

from __future__ import annotations

from gateway.catalog.schema import Hardware
from gateway.cost.offer import Offer, PlanContext
from providers._local import local_offers
from providers._local_jobs import LocalJobs


def _support(hw: Hardware, ctx: PlanContext) -> str | None:
    if ctx.spec.method == "qlora" and hw.vendor != "nvidia":
        return f"QLoRA needs bitsandbytes on an NVIDIA GPU ({hw.id} has none); use method: lora"
    return None


class LocalHF(LocalJobs):
    name = "local"
    kind = "local"
    worker = "providers.local_hf.worker"
    requires = ("torch", "transformers", "peft", "trl", "datasets")
    distributed = True  # DDP under torchrun: several GPUs, or CPU processes with gloo

    def offers(self, ctx: PlanContext) -> list[Offer]:
        return local_offers(ctx, self.name, "hf", _support)
