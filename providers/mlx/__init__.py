"""Local training with mlx-lm on Apple Silicon (LoRA, DoRA, QLoRA on a quantized base, full)."""

from __future__ import annotations

from gateway.catalog.schema import Hardware
from gateway.offer import Offer, PlanContext
from providers._local import local_offers


def _support(hw: Hardware, ctx: PlanContext) -> str | None:
    if hw.vendor != "apple":
        return (
            f"MLX trains on Apple Silicon ({hw.id} is not); on Linux mlx[cpu] runs but is slower "
            "than local (TRL+PEFT) on the same CPU; price a Mac with --hardware m4-max-128gb"
        )
    if ctx.spec.objective != "sft":
        return f"mlx-lm trains SFT only; {ctx.spec.objective.upper()} runs with local (TRL+PEFT)"
    return None


class MLX:
    name = "mlx"
    kind = "local"

    def offers(self, ctx: PlanContext) -> list[Offer]:
        # no Mac rentals in the catalog: MLX offers this machine (or a --hardware what-if) only
        return local_offers(ctx, self.name, "mlx", _support, rentable=False)
