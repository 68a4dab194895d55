"""The prompts a teacher is asked: from a file in any format the data toolkit reads, or from the
gateway's own traffic (what body logging kept), deduplicated and checked against an eval set
before anything is paid.

A chat example gives its turns up to the last user message as the prompt and its final
assistant answer (if any) as a reference; a prompt/completion pair its prompt and completion; a
prompt-only record its prompt. A reference, where there is one, is what `--keep` scorers check
the teacher's answer against.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gateway.data.formats import Example, load
from gateway.errors import SpecError
from gateway.journal.teacher import digest

Messages = list[dict[str, Any]]


@dataclass(frozen=True)
class Prompt:
    messages: Messages
    source: str  # file:line, or the request id it came from
    reference: str | None = None  # text, or {"tool_calls": [...]} as JSON
    tools: list[Any] | None = None  # offered to the teacher, written with the example

    @property
    def sha(self) -> str:
        return digest([self.messages, self.tools] if self.tools else self.messages)

    def text(self) -> str:
        return "\n".join(str(m.get("content") or "") for m in self.messages)


def _column_reference(ex: Example) -> str | None:
    ref = ex.columns.get("answer") or ex.columns.get("reference")
    return ref if isinstance(ref, str) and ref else None


def _of_example(ex: Example, where: str) -> Prompt | None:
    msgs = [m for m in ex.messages if isinstance(m, dict)]
    if ex.kind in ("chat", "kto", "completion") or (ex.kind == "prompt" and msgs):
        last_user = max((i for i, m in enumerate(msgs) if m.get("role") == "user"), default=None)
        if last_user is None:
            return None
        after = msgs[last_user + 1 :]
        last = after[-1] if after and after[-1].get("role") == "assistant" else {}
        ref = json.dumps({"tool_calls": last["tool_calls"]}) if last.get("tool_calls") else None
        ref = ref or (last.get("content") if isinstance(last.get("content"), str) else None)
        return Prompt(msgs[: last_user + 1], where, ref or _column_reference(ex), ex.tools or None)
    if ex.kind in ("prompt", "text") and isinstance(ex.text, str) and ex.text.strip():
        return Prompt([{"role": "user", "content": ex.text}], where, _column_reference(ex))
    if ex.kind == "preference" and ex.messages:
        return Prompt(msgs, where)
    return None


def from_file(path: Path) -> list[Prompt]:
    """Every prompt in `path`; an unreadable line is refused with `file:line: why`."""
    path = Path(path)
    if not path.is_file():
        raise SpecError(f"{path}: no such file", fix="--prompts FILE (JSONL, JSON, CSV, Parquet)")
    loaded = load(path)
    problems = [(r.line, r.error) for r in loaded.read_errors]
    problems += loaded.unknown_lines + loaded.shape_errors
    if problems:
        line, why = sorted(problems, key=lambda p: p[0])[0]
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise SpecError(
            f"{path}:{line}: {why}{more}",
            fix="`tunegate data check` lists every line; fix or remove them, then run again",
        )
    out = []
    for ex in loaded.examples:
        found = _of_example(ex, f"{path}:{ex.line}")
        if found is None:
            raise SpecError(
                f"{path}:{ex.line}: no user message to ask the teacher",
                fix="a chat example with a user turn, a prompt/completion pair, or a prompt",
            )
        out.append(found)
    if not out:
        raise SpecError(f"{path}: no prompts", fix="one prompt per line")
    return out


def from_traffic(name: str, since: float = 0.0, journal_path: Path | None = None) -> list[Prompt]:
    """The prompts `tunegate serve` kept for an alias's A/B experiments (`--log-bodies`) and
    for requests to `name` metered with `--log-prompts`, oldest first (redacted when kept)."""
    from gateway.journal.experiments import Experiments
    from gateway.journal.serving import ServeStore

    found: list[Prompt] = []
    with ServeStore(journal_path) as store:
        exps = [e for e in Experiments(store).all() if e.alias == name]
        for exp in exps:
            for row in Experiments(store).bodies(exp.id):
                if row["created_at"] >= since and isinstance(row["prompt"], list):
                    found.append(Prompt(row["prompt"], str(row["request_id"])))
        for rec in store.usage(since=since):
            if rec.model == name and rec.prompt_json and rec.status < 400:
                msgs = json.loads(rec.prompt_json)
                if isinstance(msgs, list):
                    found.append(Prompt(msgs, rec.request_id))
    if not found:
        raise SpecError(
            f"no kept prompts for '{name}'",
            fix=f"tunegate ab start {name} ... --log-bodies 30, or tunegate serve --log-prompts",
        )
    return found


def unique(prompts: list[Prompt]) -> tuple[list[Prompt], list[Prompt]]:
    """(first of each prompt, the repeats): a teacher is never asked the same prompt twice."""
    seen: set[str] = set()
    kept, repeats = [], []
    for p in prompts:
        (repeats if p.sha in seen else kept).append(p)
        seen.add(p.sha)
    return kept, repeats


def contaminated(prompts: list[Prompt], eval_path: Path) -> list[tuple[Prompt, str]]:
    """Prompts sharing a 13-word run (or the whole user turn) with an eval example, and the
    shared words: answers to them would make the eval overstate the student."""
    from gateway.data.hygiene import contamination, normalize

    evals = load(Path(eval_path)).examples
    as_examples = [
        Example(i, "chat", "messages", messages=p.messages) for i, p in enumerate(prompts)
    ]
    hits = {h.line: h.ngram for h in contamination(as_examples, evals)}
    whole = {
        normalize(str(m.get("content") or ""))
        for ev in evals
        for m in ev.messages
        if isinstance(m, dict) and m.get("role") == "user"
    }
    for i, p in enumerate(prompts):
        last = normalize(str(p.messages[-1].get("content") or ""))
        if i not in hits and last and last in whole:
            hits[i] = last
    return [(prompts[i], gram) for i, gram in sorted(hits.items())]


def held_out(
    prompts: list[Prompt], share: float, seed: int = 0
) -> tuple[list[Prompt], list[Prompt]]:
    """(training prompts, held-out prompts): a fixed-seed `share` kept apart for the eval."""
    if share <= 0 or len(prompts) < 2:
        return prompts, []
    order = list(range(len(prompts)))
    random.Random(seed).shuffle(order)
    n = max(1, round(len(prompts) * share))
    out = set(order[:n])
    return (
        [p for i, p in enumerate(prompts) if i not in out],
        [p for i, p in enumerate(prompts) if i in out],
    )
