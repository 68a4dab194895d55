"""Task-eval scorers: plain functions `score(pred, ref) -> float` in [0, 1], each with the
normalisation that makes it fair (evaluation.md section 4).

- `exact`: SQuAD-style normalised match (case, punctuation, articles, spaces).
- `regex`: the pattern's first match in the answer equals the one in the reference (or, with
  no match in the reference, the answer simply matches).
- `json`: the answer parses (code fences stripped), validates against a schema when given,
  and equals the reference object field by field (numbers within 1e-6, strings normalised).
- `tool`: the same function calls with the same arguments, order-free for parallel calls;
  strings compared normalised, 3 == 3.0.
"""

from __future__ import annotations

import json
import re
import string
from collections.abc import Callable
from pathlib import Path
from typing import Any

from gateway.spec.choices import SCORERS as _SCORERS

Scorer = Callable[[Any, Any], float]
_ARTICLES = re.compile(r"\b(a|an|the)\b", re.IGNORECASE)
_FENCE = re.compile(r"^\s*```(?:json)?\s*(.*?)\s*```\s*$", re.DOTALL)


def normalise(text: str) -> str:
    text = str(text).lower()
    text = "".join(ch for ch in text if ch not in set(string.punctuation))
    return " ".join(_ARTICLES.sub(" ", text).split())


def exact(pred: Any, ref: Any) -> float:
    return float(normalise(str(pred)) == normalise(str(ref)))


def make_regex(pattern: str) -> Scorer:
    compiled = re.compile(pattern)

    def regex(pred: Any, ref: Any) -> float:
        got = compiled.search(str(pred))
        want = compiled.search(str(ref))
        if want is None:
            return float(got is not None)
        return float(got is not None and got.group(0).strip() == want.group(0).strip())

    return regex


def parse_json(text: Any) -> Any:
    """The JSON in an answer, fences stripped; raises ValueError when there is none."""
    if not isinstance(text, str):
        return text
    match = _FENCE.match(text)
    return json.loads(match.group(1) if match else text.strip())


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return abs(float(a) - float(b)) <= 1e-6
    if isinstance(a, str) and isinstance(b, str):
        return normalise(a) == normalise(b)
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


def make_json(schema: dict[str, Any] | None = None) -> Scorer:
    def json_match(pred: Any, ref: Any) -> float:
        try:
            got = parse_json(pred)
        except ValueError:
            return 0.0
        if schema is not None:
            import jsonschema

            try:
                jsonschema.validate(got, schema)
            except jsonschema.ValidationError:
                return 0.0
        try:
            want = parse_json(ref)
        except ValueError:
            return 0.0
        return float(_same(got, want))

    return json_match


def _calls(value: Any) -> list[tuple[str, Any]] | None:
    """[(name, arguments)] from OpenAI tool_calls, or a JSON text of them; None if unreadable."""
    try:
        value = parse_json(value) if isinstance(value, str) else value
    except ValueError:
        return None
    if isinstance(value, dict):
        value = value.get("tool_calls", [value])
    if not isinstance(value, list):
        return None
    out = []
    for call in value:
        fn = call.get("function", call) if isinstance(call, dict) else None
        if not isinstance(fn, dict) or "name" not in fn:
            return None
        args = fn.get("arguments", {})
        try:
            args = json.loads(args) if isinstance(args, str) else args
        except ValueError:
            return None
        out.append((str(fn["name"]), args))
    return out


def tool(pred: Any, ref: Any) -> float:
    got, want = _calls(pred), _calls(ref)
    if got is None or want is None or len(got) != len(want):
        return 0.0
    left = list(got)
    for name, args in want:  # each wanted call matched by one call, in any order
        match = next((c for c in left if c[0] == name and _same(c[1], args)), None)
        if match is None:
            return 0.0
        left.remove(match)
    return 1.0


SCORERS = _SCORERS  # the names are the spec's (gateway.spec.choices); the functions are here


def get_scorer(
    name: str, *, pattern: str | None = None, schema: Path | dict[str, Any] | None = None
) -> Scorer:
    """The scorer called `name`; `schema` (for json) is a JSON Schema or the file holding one."""
    from gateway.errors import SpecError

    if name == "exact":
        return exact
    if name == "regex":
        if not pattern:
            raise SpecError("--scorer regex needs --pattern REGEX")
        try:
            return make_regex(pattern)
        except re.error as exc:
            raise SpecError(f"--pattern {pattern!r} is not a regular expression: {exc}") from None
    if name == "json":
        if isinstance(schema, Path):
            try:
                schema = json.loads(schema.read_text())
            except (OSError, ValueError) as exc:
                raise SpecError(f"{schema}: not a JSON Schema file ({exc})") from None
        return make_json(schema)
    if name == "tool":
        return tool
    raise SpecError(f"unknown scorer {name!r}", fix=f"one of: {', '.join(SCORERS)}")
