"""Render samples through the base model's chat template with trained tokens marked, and check
the three things behind "the model never stops": exactly one BOS, an unmasked end-of-turn
token closing every assistant turn, and padding distinct from the end token."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

from gateway.data.formats import Example
from gateway.data.tokens import chat_ids

END_OF_TURN = ("<|im_end|>", "<|eot_id|>", "<end_of_turn>", "<|end|>", "<|return|>", "</s>")


@dataclass
class Rendered:
    line: int
    pieces: list[tuple[str, bool]]  # (decoded text, trained?)
    problems: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "line": self.line,
            "text": "".join(t for t, _ in self.pieces),
            "trained_text": "".join(t for t, trained in self.pieces if trained),
            "problems": self.problems,
        }


def end_of_turn_id(tok: Any) -> int | None:
    vocab = tok.get_vocab()
    for token in END_OF_TURN:
        if token in vocab:
            return vocab[token]
    return tok.eos_token_id


def tokenizer_problems(tok: Any) -> list[str]:
    """Problems that affect every example, not one."""
    problems = []
    if not getattr(tok, "chat_template", None):
        problems.append(
            "the tokenizer has no chat template (expected one: every backend renders chats with it)"
        )
    if tok.pad_token_id is not None and tok.pad_token_id == tok.eos_token_id:
        problems.append(
            "pad token = eos token: a collator that masks padding also masks the end token, "
            "so the model never learns to stop (expected a distinct pad token)"
        )
    return problems


def render_example(ex: Example, tok: Any) -> Rendered:
    msgs = ex.messages + (ex.chosen if ex.kind == "preference" else [])
    ids = chat_ids(tok, msgs)
    trained = [False] * len(ids)
    spans = []
    for i, m in enumerate(msgs):
        if isinstance(m, dict) and m.get("role") == "assistant":
            start, end = len(chat_ids(tok, msgs[:i], True)), len(chat_ids(tok, msgs[: i + 1]))
            spans.append((start, end))
            for k in range(start, min(end, len(ids))):
                trained[k] = True
    problems = []
    bos = tok.bos_token_id
    if bos is not None:
        count = ids.count(bos)
        if count != 1:
            problems.append(f"{count} BOS tokens (expected exactly one)")
    eot = end_of_turn_id(tok)
    for n, (start, end) in enumerate(spans, start=1):
        if eot is None or eot not in ids[start:end]:
            problems.append(
                f"assistant turn {n} is not closed by a trained end-of-turn token "
                f"(expected {tok.convert_ids_to_tokens(eot) if eot is not None else 'an eos token'})"
            )
    pieces: list[tuple[str, bool]] = []
    for token_id, is_trained in zip(ids, trained, strict=True):
        text = tok.decode([token_id])
        if pieces and pieces[-1][1] == is_trained:
            pieces[-1] = (pieces[-1][0] + text, is_trained)
        else:
            pieces.append((text, is_trained))
    return Rendered(ex.line, pieces, problems)


@dataclass
class RenderReport:
    """`render(path, base)`: the tokenizer's own problems and the rendered samples."""

    problems: list[str]
    samples: list[Rendered]

    @property
    def failed(self) -> bool:
        return bool(self.problems) or any(s.problems for s in self.samples)

    def to_json(self) -> dict[str, Any]:
        return {"problems": self.problems, "samples": [s.to_json() for s in self.samples]}


def render(path: Any, base: str, n: int = 5, seed: int = 0) -> RenderReport:
    """Samples of a file as `base` sees them, with the never-stops checks; the tokenizer must be
    on disk (nothing is downloaded)."""
    from gateway.data.formats import load
    from gateway.data.tokens import load_tokenizer
    from gateway.errors import TunegateError

    tok = load_tokenizer(base)
    if tok is None:
        raise TunegateError(
            f"no tokenizer for '{base}' on disk",
            fix="pass a local model folder, or download the "
            f"tokenizer files: huggingface-cli download {base} tokenizer.json tokenizer_config.json",
        )
    samples = render_samples(load(path).examples, tok, n, seed) if tok.chat_template else []
    return RenderReport(tokenizer_problems(tok), samples)


def render_samples(examples: list[Example], tok: Any, n: int = 5, seed: int = 0) -> list[Rendered]:
    chats = [ex for ex in examples if ex.kind in ("chat", "completion", "preference")]
    picked = random.Random(seed).sample(chats, min(n, len(chats)))
    return [render_example(ex, tok) for ex in sorted(picked, key=lambda e: e.line)]
