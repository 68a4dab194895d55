"""Together AI: LoRA or full fine-tuning, serverless multi-LoRA for a few bases, else dedicated."""

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


class Together:
    name = "together"
    kind = "hosted"

    def offers(self, ctx: PlanContext) -> list[Offer]:
        spec, model = ctx.spec, ctx.model
        offer = base_offer(ctx, self.name, ["TOGETHER_API_KEY"])
        hosted = model.hosted.get("together")
        if hosted is None:
            return [
                offer.refuse(
                    f"Together does not tune {model.id} (not in its fine-tuning model list)"
                )
            ]
        offer.model_id = hosted.id
        if spec.method == "dora":
            offer.refuse("Together tunes LoRA or full weights, not DoRA")
        if spec.method == "full" and not hosted.full:
            offer.refuse(f"Together offers only LoRA for {hosted.id}")
        if spec.method == "qlora":
            offer.notes.append(
                "QLoRA runs as 16-bit LoRA on Together (QLoRA only saves local memory)"
            )
        prices = ctx.catalog.prices["training"]["together"]
        row = band(prices["bands"], model.size_b)
        if row is None:
            return [offer.refuse(f"no Together price band for a {model.size_b:.0f}B model")]
        key = f"{spec.objective}_{'full' if spec.method == 'full' else 'lora'}"
        epochs = spec.training.epochs or 1
        billed = (
            epochs * epoch_tokens(ctx, packing_billed=False)
            + (spec.training.n_evals or 0) * ctx.report.validation_tokens
        )
        offer.billed_tokens = billed
        offer.train_usd = Range.of(max(prices.get("minimum_usd", 0), billed / 1e6 * row[key]))
        offer.train_hours = hosted_hours(ctx, billed)
        offer.assumptions.append(
            f"${row[key]}/1M billed tokens ({key}, {prices['source']}, {prices['as_of']})"
        )
        if not spec.training.packing:
            offer.notes.append("packing off: Together bills examples x max_seq_len per epoch")
        if no_serving(ctx, offer):
            return [offer]
        serving = ctx.catalog.prices["serving"]["together"]
        tpd = spec.serving.tokens_per_day
        price = serving["serverless_per_1m_tokens"].get(hosted.id)
        if hosted.serverless_lora and spec.uses_adapter and price:
            route = per_token_route("Together serverless LoRA", price["usd"], tpd)
        else:
            route = dedicated_serving(ctx, "Together dedicated endpoint", serving["dedicated"])
        return [apply_route(offer, route, "no Together serving price")]
