"""Token statistics: with the base model's real tokenizer and chat template when one is on
disk (a local path or the HF cache; nothing is downloaded), else a flagged approximation."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from gateway.data.formats import Example, content_text

TRUNCATION_POINTS = (512, 1024, 2048, 4096)
CHARS_PER_TOKEN = 4.0  # rule of thumb for English BPE vocabularies (OpenAI tokenizer docs)
TEMPLATE_TOKENS_PER_MESSAGE = 4


@dataclass
class TokenStats:
    lengths: list[int]
    trained: list[int]
    approximate: bool
    tokenizer: str | None = None
    notes: list[str] = field(default_factory=list)

    def percentile(self, q: float) -> int:
        ordered = sorted(self.lengths)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else 0

    def suggested_max_seq_len(self, context: int | None = None) -> int:
        value = max(128, math.ceil(self.percentile(0.95) / 128) * 128)
        return min(value, context) if context else value

    def histogram(self, bins: int = 10) -> list[tuple[int, int, int]]:
        if not self.lengths:
            return []
        top = max(self.lengths)
        width = max(1, math.ceil(top / bins))
        counts = [0] * bins
        for n in self.lengths:
            counts[min(bins - 1, (n - 1) // width)] += 1
        return [(i * width + 1, (i + 1) * width, c) for i, c in enumerate(counts)]

    def to_json(self) -> dict[str, Any]:
        n = len(self.lengths) or 1
        return {
            "mean": round(sum(self.lengths) / n, 1),
            "p50": self.percentile(0.50),
            "p95": self.percentile(0.95),
            "p99": self.percentile(0.99),
            "max": max(self.lengths, default=0),
            "total": sum(self.lengths),
            "trained_total": sum(self.trained),
            "truncated_share": {
                str(k): round(sum(1 for x in self.lengths if x > k) / n, 4)
                for k in TRUNCATION_POINTS
            },
            "approximate": self.approximate,
            "tokenizer": self.tokenizer,
        }


def load_tokenizer(base: str | None) -> Any | None:
    """The base model's tokenizer from local files only; None when unavailable."""
    if not base:
        return None
    try:
        from transformers import AutoTokenizer  # only when a real count is asked for
    except ImportError:
        return None
    from gateway.catalog.models import local_model

    where = local_model(base) or base
    try:
        return AutoTokenizer.from_pretrained(str(where), local_files_only=True)
    except Exception:  # any missing file, gated repo or parse error means: approximate
        return None


def approx_tokens(ex: Example) -> tuple[int, int]:
    """(tokens processed, tokens trained) without a tokenizer: characters / 4 plus template
    overhead; a preference pair's prompt counts twice (it is processed with both answers)."""
    msgs = [*ex.messages, *ex.chosen, *ex.rejected]
    total = len(ex.all_text()) / CHARS_PER_TOKEN + TEMPLATE_TOKENS_PER_MESSAGE * len(msgs)
    if ex.kind == "preference":
        total += sum(
            len(content_text(m.get("content"))) / CHARS_PER_TOKEN + TEMPLATE_TOKENS_PER_MESSAGE
            for m in ex.messages
            if isinstance(m, dict)
        )
    if ex.kind == "text":
        return max(1, round(total)), max(1, round(total))
    answers = [m for m in msgs if isinstance(m, dict) and m.get("role") == "assistant"]
    trained = sum(len(content_text(m.get("content"))) / CHARS_PER_TOKEN + 1 for m in answers)
    return max(1, round(total)), round(trained)


def chat_ids(
    tok: Any, messages: list[dict[str, Any]], add_generation_prompt: bool = False
) -> list[int]:
    """Token ids of a conversation through the chat template (transformers 4 returns a list,
    5 a BatchEncoding)."""
    out = tok.apply_chat_template(
        messages, tokenize=True, add_generation_prompt=add_generation_prompt
    )
    if hasattr(out, "keys"):
        out = out["input_ids"]
    return list(out)


def _real(ex: Example, tok: Any) -> tuple[int, int]:
    plain = ex.kind == "text" or (ex.kind == "prompt" and ex.text is not None)
    if plain or not getattr(tok, "chat_template", None):
        ids = tok(ex.all_text())["input_ids"]
        return len(ids), 0 if ex.kind == "prompt" else len(ids)  # a prompt is never trained on
    msgs = ex.messages + (ex.chosen if ex.kind == "preference" else [])

    def length(m: list[dict[str, Any]], gen: bool) -> int:
        return len(chat_ids(tok, m, gen))

    total = length(msgs, False)
    trained = 0
    for i, m in enumerate(msgs):
        if m.get("role") == "assistant":
            trained += length(msgs[: i + 1], False) - length(msgs[:i], True)
    if ex.kind == "preference":
        total += length(ex.messages + ex.rejected, False)
    return total, max(0, trained)


def token_stats(
    examples: list[Example], tokenizer: Any | None = None, name: str | None = None
) -> TokenStats:
    lengths, trained = [], []
    for ex in examples:
        try:
            total, learn = _real(ex, tokenizer) if tokenizer is not None else approx_tokens(ex)
        except Exception:  # a malformed example the validator already reports
            total, learn = approx_tokens(ex)
        lengths.append(total)
        trained.append(learn)
    stats = TokenStats(lengths, trained, tokenizer is None, name if tokenizer is not None else None)
    if tokenizer is None:
        stats.notes.append(
            "approximate counts (characters / 4): no tokenizer for the base model on disk"
        )
    return stats
