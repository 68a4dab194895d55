"""OpenAI: supervised and DPO fine-tuning of OpenAI's own models; served per token."""

from __future__ import annotations

from gateway.offer import Offer, PlanContext
from gateway.serving import blended_per_1m, per_token_route
from gateway.units import Range
from providers._hosted import base_offer, epoch_tokens, hosted_hours, no_serving


class OpenAI:
    name = "openai"
    kind = "hosted"

    def offers(self, ctx: PlanContext) -> list[Offer]:
        spec, model = ctx.spec, ctx.model
        offer = base_offer(ctx, self.name, ["OPENAI_API_KEY"])
        hosted = model.hosted.get("openai")
        if hosted is None:
            tunable = ", ".join(m.id for m in ctx.catalog.models if "openai" in m.hosted)
            return [
                offer.refuse(f"OpenAI tunes only its own models ({tunable}); {model.id} is not one")
            ]
        offer.model_id = hosted.id
        if spec.method == "dora":
            offer.refuse("OpenAI does not let you choose the adapter method (DoRA requested)")
        elif spec.method != "lora":
            offer.notes.append(
                f"OpenAI chooses how it tunes; method {spec.method} and LoRA settings are not used"
            )
        prices = ctx.catalog.prices["training"]["openai"]
        price = prices["models"].get(hosted.id)
        if price is None:
            return [offer.refuse(f"no OpenAI training price for {hosted.id} in the catalog")]
        billed = (spec.training.epochs or 1) * epoch_tokens(ctx)
        offer.billed_tokens = billed
        offer.train_usd = Range.of(billed / 1e6 * price["usd"])
        offer.train_hours = hosted_hours(ctx, billed)
        offer.assumptions.append(
            f"${price['usd']}/1M training tokens ({prices['source']}, {prices['as_of']})"
        )
        if no_serving(ctx, offer):
            return [offer]
        serve = ctx.catalog.prices["serving"]["openai"]["models"].get(hosted.id)
        if serve is None:
            return [offer.refuse(f"no OpenAI serving price for {hosted.id}")]
        blended = blended_per_1m(serve["input"], serve["output"], spec.serving.output_share)
        route = per_token_route(f"OpenAI ft:{hosted.id}", blended, spec.serving.tokens_per_day)
        offer.serve, offer.serve_usd_month, offer.serve_usd_per_1m = (
            route.label,
            route.usd_month,
            route.usd_per_1m,
        )
        offer.assumptions.append(
            f"serving blends ${serve['input']}/1M input and ${serve['output']}/1M output at "
            f"{spec.serving.output_share:.0%} output"
        )
        return [offer]
