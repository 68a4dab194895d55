"""Prompt baselines: the base model with the user's best prompt, the competitor a fine-tune
must beat ("don't fine-tune until prompt engineering has stopped paying off").

`few-shot:K` puts K examples from the training file in front of every eval question, as earlier
turns of the chat; they are drawn deterministically and never share text with the eval set (an
example that does is left out, and the draw refused when too few are left). `system:FILE` puts
the user's prompt in the system message, before the example's own. Each arm runs on the base
through the same backend and scorer as the fine-tune (`gateway.evaluate.task`).
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gateway.data.formats import Example, load
from gateway.errors import SpecError

Messages = list[dict[str, Any]]
FORMS = "few-shot:K (K examples from the training file) or system:FILE (your prompt)"
MAX_SHOTS = 64


@dataclass(frozen=True)
class Baseline:
    """One prompt baseline, as the user names it (`few-shot:5`, `system:prompt.txt`)."""

    kind: str  # few-shot | system
    shots: int = 0
    path: Path | None = None

    @property
    def name(self) -> str:
        return f"few-shot:{self.shots}" if self.kind == "few-shot" else f"system:{self.path}"

    @property
    def label(self) -> str:
        if self.kind == "few-shot":
            return f"base + {self.shots}-shot"
        return f"base + system prompt ({Path(str(self.path)).name})"


def parse_baseline(text: str, relative_to: Path | None = None) -> Baseline:
    """`few-shot:K` or `system:FILE` (a relative FILE is taken from `relative_to`, the job
    file's folder); anything else is a `SpecError` naming the forms."""
    kind, sep, arg = str(text).strip().partition(":")
    if kind == "few-shot" and sep and re.fullmatch(r"\d+", arg):
        k = int(arg)
        if not 1 <= k <= MAX_SHOTS:
            raise SpecError(f"baseline {text}: K must be 1 to {MAX_SHOTS}", fix="e.g. few-shot:5")
        return Baseline("few-shot", shots=k)
    if kind == "system" and sep and arg:
        path = Path(arg).expanduser()
        if relative_to is not None and not path.is_absolute():
            path = relative_to / path
        return Baseline("system", path=path)
    raise SpecError(f"unknown baseline {text!r}", fix=f"one of: {FORMS}")


def _text(msg: dict[str, Any]) -> str:
    from gateway.data.hygiene import content_text, normalize

    return normalize(content_text(msg.get("content")))


@dataclass
class Shots:
    """The examples a few-shot arm shows, where they came from, and what was left out."""

    messages: Messages
    lines: list[int]
    excluded: list[int] = field(default_factory=list)  # training lines that share eval text


def draw_shots(train: Path, evals: list[Example], k: int, seed: int = 0) -> Shots:
    """K chat examples of `train` ending in an assistant answer, drawn with `seed` (the same
    file gives the same shots), in file order; an example sharing a 13-word run or a whole
    message with an eval example is never drawn."""
    from gateway.data.hygiene import contamination

    if not Path(train).is_file():
        raise SpecError(f"few-shot:{k} draws from the training file; {train} is not a file")
    loaded = load(Path(train)).examples
    usable = [ex for ex in loaded if ex.messages and ex.messages[-1].get("role") == "assistant"]
    eval_texts = {_text(m) for ev in evals for m in ev.messages if m.get("role") != "system"}
    eval_texts.discard("")
    leaked = {h.line for h in contamination(usable, evals)}
    leaked |= {
        ex.line
        for ex in usable
        if any(_text(m) in eval_texts for m in ex.messages if m.get("role") != "system")
    }
    clean = [ex for ex in usable if ex.line not in leaked]
    if len(clean) < k:
        raise SpecError(
            f"few-shot:{k}: {train} has {len(clean)} examples that share no text with the eval "
            f"set ({len(leaked)} do, lines {', '.join(map(str, sorted(leaked)[:10]))})",
            fix="draw from a training file that is disjoint from the eval data, or lower K",
        )
    picked = sorted(random.Random(seed).sample(range(len(clean)), k))
    messages: Messages = []
    for i in picked:
        messages += [dict(m) for m in clean[i].messages if m.get("role") != "system"]
    return Shots(messages, [clean[i].line for i in picked], sorted(leaked))


def system_prompt(path: Path) -> str:
    """The text of a `system:FILE` baseline; a file that cannot be read, or is empty, is
    refused with its name."""
    try:
        text = Path(path).read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        raise SpecError(f"{path}: no such file (the system prompt of a baseline)") from None
    except UnicodeDecodeError as exc:
        raise SpecError(f"{path}: not UTF-8 text at byte {exc.start}, expected a prompt") from None
    if not text:
        raise SpecError(f"{path}:1: the system prompt is empty, expected the prompt's text")
    return text


@dataclass
class Arm:
    """A baseline made concrete for one eval set: the prompts the base answers."""

    baseline: Baseline
    prompts: list[Messages]
    notes: list[str] = field(default_factory=list)
    shots: Shots | None = None


def build_arm(
    baseline: Baseline,
    prompts: list[Messages],
    evals: list[Example],
    train: Path | None,
    data: Path,
    seed: int = 0,
) -> Arm:
    """Each eval prompt as the baseline asks it: shots after the system message, or the
    user's prompt in front of it."""
    if baseline.kind == "system":
        text = system_prompt(Path(str(baseline.path)))
        return Arm(baseline, [_with_system(p, text) for p in prompts])
    if train is None:
        raise SpecError(
            f"{baseline.name} draws its examples from the training file",
            fix="pass --train TRAIN.jsonl (a job's own training file is used by itself)",
        )
    if Path(train).resolve() == Path(data).resolve():
        raise SpecError(
            f"{baseline.name}: the training file is the eval data ({data}); the shots would be "
            "the answers",
            fix="evaluate on held-out data (a validation file) and draw shots from train",
        )
    shots = draw_shots(Path(train), evals, baseline.shots, seed)
    notes = [f"{baseline.label}: examples from {Path(train).name} lines {_lines(shots.lines)}"]
    if shots.excluded:
        notes.append(
            f"{baseline.label}: {len(shots.excluded)} training examples share text with the "
            "eval set and were never drawn"
        )
    return Arm(baseline, [_with_shots(p, shots.messages) for p in prompts], notes, shots)


def _lines(lines: list[int]) -> str:
    shown = ", ".join(map(str, lines[:12]))
    return shown + (f" and {len(lines) - 12} more" if len(lines) > 12 else "")


def _with_shots(prompt: Messages, shots: Messages) -> Messages:
    head = [m for m in prompt[:1] if m.get("role") == "system"]
    return [*head, *shots, *prompt[len(head) :]]


def _with_system(prompt: Messages, text: str) -> Messages:
    if prompt and prompt[0].get("role") == "system":
        own = prompt[0].get("content") or ""
        joined = f"{text}\n\n{own}" if isinstance(own, str) and own else text
        return [{**prompt[0], "content": joined}, *prompt[1:]]
    return [{"role": "system", "content": text}, *prompt]
