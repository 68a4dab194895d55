"""Checks that hold for the examples of one training objective as a whole: kinds the objective
does not train on, KTO labels all one way, GRPO prompts of two kinds or without a reference."""

from __future__ import annotations

from gateway.data.findings import Finding
from gateway.data.findings import error as _err
from gateway.data.findings import warning as _warn
from gateway.data.formats import Example
from gateway.spec.objectives import kind_problem
from gateway.spec.rewards import REFERENCE_COLUMNS


def objective_findings(examples: list[Example], objective: str) -> list[Finding]:
    """One finding for the examples an objective does not train on (KTO is never read as SFT)."""
    wrong = [ex for ex in examples if kind_problem(ex.kind, objective)]
    if not wrong:
        return []
    first = wrong[0]
    return [_err(first.line, f"{len(wrong)} {kind_problem(first.kind, objective)}")]


def grpo_prompts(examples: list[Example]) -> list[Finding]:
    """Prompt-only GRPO rows: one kind of prompt per file (TRL reads a column of one type), and
    a warning for rows without a reference column, which the built-in rewards that compare
    (exact_match, contains, word_f1) would score 0."""
    prompts = [ex for ex in examples if ex.kind == "prompt"]
    out = []
    plain = [ex for ex in prompts if ex.text is not None]
    if plain and len(plain) < len(prompts):
        odd = plain if len(plain) < len(prompts) / 2 else [p for p in prompts if p.text is None]
        out.append(
            _err(
                odd[0].line,
                f"file mixes plain and conversational prompts ({len(plain)} plain, "
                f"{len(prompts) - len(plain)} conversational) (expected one kind per file)",
            )
        )
    bare = [ex for ex in prompts if not any(c in ex.columns for c in REFERENCE_COLUMNS)]
    if bare:
        out.append(
            _warn(
                bare[0].line,
                f"{len(bare)} prompt(s) without {', '.join(REFERENCE_COLUMNS)}: rewards that "
                "compare with a reference answer score them 0 (format rewards and your own "
                "still apply)",
            )
        )
    return out


def kto_balance(examples: list[Example]) -> list[Finding]:
    labels = {ex.label for ex in examples if ex.kind == "kto" and isinstance(ex.label, bool)}
    if len(labels) == 1:
        only = "desirable (true)" if labels.pop() else "undesirable (false)"
        first = next(ex.line for ex in examples if ex.kind == "kto")
        return [_warn(first, f"every KTO label is {only}: KTO learns from both kinds")]
    return []
