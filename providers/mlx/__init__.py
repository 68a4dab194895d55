"""Local training with mlx-lm: Apple Silicon, and Linux CPUs through mlx[cpu] (slower).

LoRA and DoRA (alpha becomes mlx's `scale`), full fine-tuning of the last N layers, SFT only.
Training runs in `providers.mlx.worker`; `providers.mlx.adapters` converts adapters to and from
PEFT format so every exporter takes either.
"""

from __future__ import annotations

import importlib.util
import sys

from gateway.catalog.schema import Hardware
from gateway.cost.offer import Offer, PlanContext
from providers._local import local_offers
from providers._local_jobs import LocalJobs


def _support(hw: Hardware, ctx: PlanContext) -> str | None:
    if ctx.spec.method == "qlora":
        return "QLoRA with mlx-lm needs a quantized MLX base; use method: lora (or local on CUDA)"
    if hw.vendor == "apple":
        return None
    linux_cpu = hw.vendor == "cpu" and sys.platform.startswith("linux")
    if linux_cpu and importlib.util.find_spec("mlx") is not None:
        return None  # mlx[cpu]: runs, slowly; priced with the CPU calibration
    return (
        f"MLX trains on Apple Silicon ({hw.id} is not) or on a Linux CPU with mlx[cpu] installed; "
        "price a Mac with --hardware m4-max-128gb"
    )


class MLX(LocalJobs):
    name = "mlx"
    kind = "local"
    serves_with = "mlx"  # an mlx-lm adapter is fused into an MLX folder for mlx_lm.server
    worker = "providers.mlx.worker"
    requires = ("mlx", "mlx_lm")

    def offers(self, ctx: PlanContext) -> list[Offer]:
        # no Mac rentals in the catalog: MLX offers this machine (or a --hardware what-if) only
        offers = local_offers(ctx, self.name, "mlx", _support, rentable=False)
        for offer in offers:
            hw = ctx.catalog.hardware.get(offer.hardware or "")
            if offer.feasible and hw is not None and hw.vendor == "cpu":
                offer.notes.append("mlx[cpu] on Linux: much slower than local (TRL+PEFT) here")
        return offers
