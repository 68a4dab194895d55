"""What each training objective needs and costs: the example kinds it trains on, how many
sequences one example becomes, whether a frozen reference model runs beside it, and whether it
generates. Which backend runs which objective is catalog data (rules.yaml `objectives`).

Sources: next-capabilities.md section 6 (TRL 1.16 trainers and their dataset columns).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

OBJECTIVES = ("sft", "dpo", "kto", "orpo", "grpo")


@dataclass(frozen=True)
class Objective:
    kinds: tuple[str, ...]  # example kinds (gateway.data.formats.Example.kind) it trains on
    sequences: int  # sequences one example is processed as (a pair: 2; GRPO: per completion)
    reference: bool  # a frozen reference model's forward pass per sequence
    generates: bool = False  # completions are sampled during training (GRPO)
    what: str = ""


FACTS: dict[str, Objective] = {
    "sft": Objective(("chat", "completion", "text"), 1, False, what="supervised fine-tuning"),
    "dpo": Objective(("preference",), 2, True, what="preference pairs against a reference"),
    # KTO: unpaired answers labelled good or bad; TRL unpairs preference pairs on its own
    "kto": Objective(("kto", "preference"), 1, True, what="unpaired labelled answers"),
    "orpo": Objective(("preference",), 2, False, what="SFT plus an odds-ratio preference term"),
    # GRPO: prompts alone (TRL's prompt-only type, extra columns passed to the rewards), or
    # conversations whose last assistant turn is the reference answer rewards may compare to
    "grpo": Objective(
        ("prompt", "chat", "completion"), 1, False, True, "sampled answers scored by rewards"
    ),
}

_TAKES = {"preference": "dpo or orpo (or kto)", "kto": "kto", "text": "sft", "prompt": "grpo"}


def kind_problem(kind: str, objective: str) -> str | None:
    """Why examples of `kind` cannot train with `objective`, or None."""
    facts = FACTS[objective]
    if kind in facts.kinds:
        return None
    takes = _TAKES.get(kind, "sft or grpo")
    return f"{kind} examples in a {objective} job (expected {', '.join(facts.kinds)}; {kind} data trains with objective {takes})"


def refusal(backend: str, objective: str, catalog: Any) -> str | None:
    """Why `backend` cannot run `objective` through tunegate (rules.yaml), or None."""
    rules = catalog.rules.objectives.get(backend)
    if rules is None or objective in rules.accepts:
        return None
    runs = ", ".join(o.upper() for o in rules.accepts)
    return f"{backend} runs {runs} here, not {objective.upper()}" + (
        f": {rules.elsewhere}" if rules.elsewhere else ""
    )
