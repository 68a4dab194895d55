"""AWS Bedrock: model customization of Llama 3.x (SFT); served only via Provisioned Throughput."""

from __future__ import annotations

from gateway.offer import Offer, PlanContext
from gateway.units import HOURS_PER_MONTH, Range
from providers._hosted import base_offer, epoch_tokens, hosted_hours


def _has_aws_credentials(env: dict[str, str] | object) -> bool:
    get = getattr(env, "get", lambda _k: None)
    return bool(
        get("AWS_ACCESS_KEY_ID") or get("AWS_PROFILE") or get("AWS_WEB_IDENTITY_TOKEN_FILE")
    )


class Bedrock:
    name = "bedrock"
    kind = "hosted"

    def offers(self, ctx: PlanContext) -> list[Offer]:
        spec, model = ctx.spec, ctx.model
        offer = base_offer(ctx, self.name, [])
        if not _has_aws_credentials(ctx.env):
            offer.needs.append("needs AWS credentials (AWS_ACCESS_KEY_ID or AWS_PROFILE) to launch")
        hosted = model.hosted.get("bedrock")
        if hosted is None:
            return [
                offer.refuse(
                    f"Bedrock does not customize {model.id} (Llama 3.1/3.2 only in this catalog)"
                )
            ]
        offer.model_id = hosted.id
        if spec.objective != "sft":
            offer.refuse(
                f"Bedrock fine-tunes Llama with SFT only ({spec.objective.upper()} requested)"
            )
        if spec.method == "dora":
            offer.refuse("Bedrock does not let you choose the adapter method (DoRA requested)")
        elif spec.uses_adapter:
            offer.notes.append(
                "Bedrock chooses how it tunes; LoRA settings are not used; batch size is fixed at 1"
            )
        if hosted.region:
            offer.notes.append(f"customization of {hosted.id} runs in {hosted.region}")
        train = ctx.catalog.prices["training"]["bedrock"]
        price = train["models"].get(hosted.id)
        if price is None:
            return [offer.refuse(f"no Bedrock training price for {hosted.id} in the catalog")]
        billed = (spec.training.epochs or 1) * epoch_tokens(ctx)
        offer.billed_tokens = billed
        offer.train_usd = Range.of(billed / 1e3 * price["usd"])
        offer.train_hours = hosted_hours(ctx, billed)
        offer.assumptions.append(
            f"${price['usd']}/1K training tokens ({train['source']}, {train['as_of']})"
        )
        serving = ctx.catalog.prices["serving"]["bedrock"]
        storage = serving["storage_usd_per_month"]
        if spec.serving.tokens_per_day <= 0:
            offer.serve_usd_month = Range.of(storage)
            offer.serve = f"no serving volume given; custom model storage ${storage}/month"
            return [offer]
        pt = serving["provisioned_throughput_usd_per_mu_hour"].get(hosted.id)
        if pt is None:
            return [offer.refuse(f"no Provisioned Throughput price for {hosted.id}")]
        units = hosted.provisioned_model_units
        offer.serve_usd_month = Range.of(units * pt["usd"] * HOURS_PER_MONTH + storage)
        offer.serve = (
            f"Provisioned Throughput (required for customized models): {units} model unit x "
            f"${pt['usd']}/h, billed 24/7, + ${storage}/month storage"
        )
        offer.notes.append("serving a Bedrock-customized model needs Provisioned Throughput")
        return [offer]
