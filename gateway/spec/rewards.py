"""GRPO reward functions: built-in verifiable rewards, or a user's `module:function`.

A reward takes TRL's arguments (`completions`, plus the dataset's other columns as keywords:
tunegate writes a conversation's last answer as `answer`; a prompt-only file keeps its own
columns, and the built-ins compare with `answer`, `solution` or `ground_truth`, the first
present) and returns one float per completion, 0 to 1 for the built-ins. Built-ins import nothing heavy, so the plan can name them.
"""

from __future__ import annotations

import importlib
import json
import re
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

Reward = Callable[..., list[float]]
_MODULE_FUNCTION = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")
_REGEX = re.compile(r"^regex\((.+)\)$", re.S)
_SCHEMA = re.compile(r"^json_schema\((.+)\)$")


def _text(completion: Any) -> str:
    """A completion as text: a string, or conversational `[{role, content}]`."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, list):
        return "".join(str(m.get("content") or "") for m in completion if isinstance(m, dict))
    return str(completion)


def _words(text: str) -> list[str]:
    return re.sub(r"[^\w\s]", " ", text.lower()).split()


REFERENCE_COLUMNS = ("answer", "solution", "ground_truth")  # TRL datasets' names for it


def _answers(columns: dict[str, Any], n: int) -> list[str]:
    """The reference of each completion: the first reference column the batch has."""
    answer = next((columns[c] for c in REFERENCE_COLUMNS if columns.get(c) is not None), None)
    return [_text(a) for a in answer] if isinstance(answer, list) else [""] * n


def exact_match(completions: list[Any], **columns: Any) -> list[float]:
    """1 when the completion equals the reference answer (case, punctuation, spaces ignored)."""
    refs = _answers(columns, len(completions))
    return [float(_words(_text(c)) == _words(r)) for c, r in zip(completions, refs, strict=True)]


def contains(completions: list[Any], **columns: Any) -> list[float]:
    """1 when the normalized reference answer appears inside the completion."""
    refs = _answers(columns, len(completions))
    return [
        float(bool(_words(r)) and " ".join(_words(r)) in " ".join(_words(_text(c))))
        for c, r in zip(completions, refs, strict=True)
    ]


def word_f1(completions: list[Any], **columns: Any) -> list[float]:
    """Word-overlap F1 with the reference answer (SQuAD's answer F1): partial credit."""
    out = []
    for c, r in zip(completions, _answers(columns, len(completions)), strict=True):
        got, want = Counter(_words(_text(c))), Counter(_words(r))
        common = sum((got & want).values())
        if not common:
            out.append(0.0)
            continue
        precision, recall = common / sum(got.values()), common / sum(want.values())
        out.append(2 * precision * recall / (precision + recall))
    return out


def json_valid(completions: list[Any], **_: Any) -> list[float]:
    """1 when the completion parses as a JSON object or array."""
    out = []
    for c in completions:
        try:
            out.append(float(isinstance(json.loads(_text(c)), dict | list)))
        except ValueError:
            out.append(0.0)
    return out


def _regex(pattern: str) -> Reward:
    compiled = re.compile(pattern)

    def regex(completions: list[Any], **_: Any) -> list[float]:
        return [float(compiled.search(_text(c)) is not None) for c in completions]

    return regex


def _json_schema(path: Path) -> Reward:
    """1 when the completion parses as JSON and validates against the schema in `path`."""
    import jsonschema

    try:
        schema = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ValueError(f"reward json_schema({path}): cannot read the schema: {exc}") from None
    validator = jsonschema.Draft202012Validator(schema)

    def json_schema(completions: list[Any], **_: Any) -> list[float]:
        out = []
        for c in completions:
            try:
                out.append(float(validator.is_valid(json.loads(_text(c)))))
            except ValueError:
                out.append(0.0)
        return out

    return json_schema


BUILTIN: dict[str, Reward] = {
    "exact_match": exact_match,
    "contains": contains,
    "word_f1": word_f1,
    "json_valid": json_valid,
}


def name_problem(name: str) -> str | None:
    """Why `name` is not a reward tunegate can resolve, or None (no import happens here)."""
    if name in BUILTIN or _MODULE_FUNCTION.match(name) or _SCHEMA.match(name):
        return None
    found = _REGEX.match(name)
    if found:
        try:
            re.compile(found.group(1))
        except re.error as exc:
            return f"reward {name!r}: bad regular expression ({exc})"
        return None
    return (
        f"unknown reward {name!r} (expected one of {', '.join(BUILTIN)}, regex(PATTERN), "
        "json_schema(FILE), or module:function)"
    )


def resolve(name: str, folder: Path | None = None) -> Reward:
    """The callable for `name`; a schema file is read relative to `folder` (the training
    file's), a user's module imported from the Python path."""
    if name in BUILTIN:
        return BUILTIN[name]
    schema = _SCHEMA.match(name)
    if schema:
        path = Path(schema.group(1))
        return _json_schema(path if path.is_absolute() or folder is None else folder / path)
    found = _REGEX.match(name)
    if found:
        fn = _regex(found.group(1))
        fn.__name__ = "regex"
        return fn
    module, _, attr = name.partition(":")
    try:
        fn = getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as exc:
        raise ValueError(f"reward {name!r} cannot be loaded: {exc}") from None
    if not callable(fn):
        raise ValueError(f"reward {name!r} is not a function")
    return fn
