"""Who answers: a teacher is a deployment or alias on `tunegate serve`, a hosted model named
`PROVIDER:MODEL` from the teachers table (called with the official `openai` SDK at the
provider's OpenAI-compatible URL, its key from the environment), or `URL#MODEL`.

Keys are read from the environment when the client is made and live only in it: never in the
journal, the dataset, its provenance or any message.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import Any

from gateway.catalog.teachers import UNKNOWN, Terms, provider, teachers, terms_for
from gateway.errors import SpecError, TunegateError

GATEWAY_URL = "http://127.0.0.1:8765/v1"  # `tunegate serve`'s default address


@dataclass(frozen=True)
class Price:
    """USD per 1M tokens, in and out; `known` is False when nobody stated one."""

    input: float = 0.0
    output: float = 0.0
    known: bool = False
    source: str | None = None

    def usd(self, prompt_tokens: float, completion_tokens: float) -> float:
        return (prompt_tokens * self.input + completion_tokens * self.output) / 1e6


@dataclass(frozen=True)
class Teacher:
    ref: str  # what the user named: recorded with every answer
    model: str  # what the endpoint calls it
    base_url: str
    key_env: str | None  # the variable holding its key (the key itself is never kept)
    price: Price
    terms: Terms
    notes: list[str] = field(default_factory=list)
    key_required: bool = False  # a hosted API: refuse to call it without its key

    def client(self, timeout_s: float) -> Any:
        import openai

        key = os.environ.get(self.key_env, "") if self.key_env else ""
        if self.key_required and not key:
            raise SpecError(
                f"teacher {self.ref}: {self.key_env} is not set", fix=f"export {self.key_env}=..."
            )
        return openai.OpenAI(
            base_url=self.base_url, api_key=key or "none", max_retries=0, timeout=timeout_s
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "ref": self.ref,
            "model": self.model,
            "base_url": re.sub(r"//[^/@]*@", "//", self.base_url),  # never credentials
            "price_per_1m": {"input": self.price.input, "output": self.price.output,
                             "known": self.price.known, "source": self.price.source},
            "terms": self.terms.to_json(),
        }  # fmt: skip


def _stated(price: str | None) -> Price | None:
    if price is None:
        return None
    try:
        a, _, b = price.partition("/")
        return Price(float(a), float(b or a), True, "stated (--price)")
    except ValueError:
        raise SpecError(
            f"--price {price!r} is not IN/OUT", fix="e.g. 2/8 (USD per 1M tokens in and out)"
        ) from None


def _hosted(ref: str, stated: Price | None) -> Teacher | None:
    name, sep, model = ref.partition(":")
    found = provider(name) if sep else None
    if found is None or not model:
        return None
    key_env = found.key_env
    base = (os.environ.get(found.base_url_env) if found.base_url_env else None) or found.base_url
    listed = found.models.get(model)
    price = stated or (
        Price(listed.input, listed.output, True, f"{found.source} ({found.prices_as_of})")
        if listed
        else Price()
    )
    return Teacher(
        ref, model, base.rstrip("/"), key_env, price, terms_for(model, name), key_required=True
    )


def _served(ref: str, gateway: str, stated: Price | None) -> Teacher | None:
    """A deployment or alias on `tunegate serve`: asked through the gateway (metered there)."""
    from gateway.journal import Journal
    from gateway.journal.deployments import get_deployment
    from gateway.journal.serving import ServeStore

    with ServeStore() as store:
        aliases = store.aliases()
    first = aliases[ref][0] if ref in aliases else ref
    try:
        with Journal() as journal:
            dep = get_deployment(first, journal)
            job = dep.meta.get("job")
            base = journal.get(job).base_model if job else None
    except TunegateError:  # not a deployment: the caller says what a teacher can be
        return None
    terms = terms_for(base or dep.name)
    notes = [] if stated else [f"{ref} is served by tunegate: its cost is in `tunegate usage`"]
    return Teacher(
        ref, ref, gateway.rstrip("/"), "TUNEGATE_API_KEY", stated or Price(), terms, notes
    )


def resolve(ref: str, *, gateway: str = GATEWAY_URL, price: str | None = None) -> Teacher:
    """The teacher `ref` names, with its price per token and its terms."""
    stated = _stated(price)
    if ref.startswith(("http://", "https://")):
        url, _, model = ref.partition("#")
        if not model:
            raise SpecError(f"teacher {ref}: expected URL#MODEL", fix="e.g. http://host/v1#model")
        return Teacher(
            ref, model, url.rstrip("/"), "TUNEGATE_TEACHER_API_KEY", stated or Price(),
            terms_for(model),
        )  # fmt: skip
    found = _hosted(ref, stated) or _served(ref, gateway, stated)
    if found is None:
        names = ", ".join(f"{p}:MODEL" for p in teachers().providers)
        raise SpecError(
            f"teacher {ref!r} is not a deployment, an alias, {names} or URL#MODEL",
            fix="tunegate deployments lists what tunegate serves",
        )
    return found


def check_terms(teacher: Teacher, accept_risk: bool) -> list[str]:
    """Refuse a teacher whose terms forbid training on its outputs (unless the user accepts
    the risk on purpose, which the dataset records); notes for conditional and unknown ones."""
    t = teacher.terms
    if t.distill == "forbidden" and not accept_risk:
        raise SpecError(
            f"{teacher.ref}'s terms forbid training another model on its outputs: {t.says} "
            f"(source: {t.source}, {t.as_of}, confidence {t.confidence})",
            fix="choose a teacher whose terms allow it, or --accept-terms-risk (recorded)",
        )
    if t.distill == "forbidden":
        return [f"terms forbid this use and were overridden with --accept-terms-risk: {t.says}"]
    if t.distill == "conditional":
        return [f"terms allow it with a duty: {t.says} ({t.source})"]
    if t is UNKNOWN or t.distill == "unknown":
        return [UNKNOWN.says]
    return []
