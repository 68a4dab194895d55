"""Fireworks AI: LoRA SFT and DPO; LoRA serving needs a dedicated deployment (current docs)."""

from __future__ import annotations

from gateway.offer import Offer, PlanContext
from gateway.serving import per_token_route
from gateway.units import Range
from providers._hosted import (
    apply_route,
    band,
    base_offer,
    dedicated_serving,
    epoch_tokens,
    hosted_hours,
    no_serving,
)

MIN_RANK, MAX_RANK = 4, 64  # PEFT r accepted by Fireworks (provider-contracts.md section 3)


class Fireworks:
    name = "fireworks"
    kind = "hosted"

    def offers(self, ctx: PlanContext) -> list[Offer]:
        spec, model = ctx.spec, ctx.model
        offer = base_offer(ctx, self.name, ["FIREWORKS_API_KEY", "FIREWORKS_ACCOUNT_ID"])
        hosted = model.hosted.get("fireworks")
        if hosted is None:
            return [
                offer.refuse(
                    f"Fireworks does not tune {model.id} (not in its fine-tuning model list)"
                )
            ]
        offer.model_id = hosted.id
        if spec.method in ("full", "dora"):
            offer.refuse(f"Fireworks tunes LoRA adapters only ({spec.method} requested)")
        rank = spec.lora.rank or 16
        if spec.uses_adapter and not MIN_RANK <= rank <= MAX_RANK:
            offer.refuse(
                f"Fireworks accepts LoRA rank {MIN_RANK}-{MAX_RANK}; the job asks for {rank}"
            )
        if spec.method == "qlora":
            offer.notes.append("QLoRA runs as 16-bit LoRA on Fireworks")
        prices = ctx.catalog.prices["training"]["fireworks"]
        row = band(prices["bands"], model.size_b)
        if row is None:
            return [offer.refuse(f"no Fireworks price band for a {model.size_b:.0f}B model")]
        rate = row["sft"] * (prices["dpo_multiplier"] if spec.objective == "dpo" else 1)
        billed = (spec.training.epochs or 1) * epoch_tokens(ctx)
        offer.billed_tokens = billed
        offer.train_usd = Range.of(billed / 1e6 * rate)
        offer.train_hours = hosted_hours(ctx, billed)
        offer.assumptions.append(
            f"${rate:g}/1M training tokens ({prices['source']}, {prices['as_of']})"
        )
        if no_serving(ctx, offer):
            return [offer]
        serving = ctx.catalog.prices["serving"]["fireworks"]
        tpd = spec.serving.tokens_per_day
        if serving.get("serverless_lora"):
            row = band(serving["serverless_per_1m_tokens_bands"], model.size_b)
            route = per_token_route("Fireworks serverless", row["usd"], tpd) if row else None
        else:
            route = dedicated_serving(ctx, "Fireworks on-demand deployment", serving["dedicated"])
            offer.notes.append(
                "Fireworks serves LoRA models on a dedicated deployment (billed per GPU-hour)"
            )
        return [apply_route(offer, route, "no Fireworks serving price for this size")]
