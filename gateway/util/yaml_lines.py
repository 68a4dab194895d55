"""YAML files a user wrote, read so that every error says `file:line: what is wrong
(expected ...)`: where a key lives, the file read, and pydantic's errors in words, with the
keys allowed at that place of the model the file is checked against (`root`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from gateway.errors import SpecError


def line_of(text: str, loc: tuple[Any, ...]) -> int:
    """1-based line of the deepest YAML node on `loc` (the key itself for unknown keys)."""
    try:
        node = yaml.compose(text)
    except yaml.YAMLError:
        return 1
    line = 1
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            match = next(((k, v) for k, v in node.value if k.value == str(part)), None)
            if match is None:
                break
            line = match[0].start_mark.line + 1
            node = match[1]
        elif (
            isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value)
        ):
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            break
    return line


def _allowed_keys(loc: tuple[Any, ...], root: type[BaseModel]) -> list[str]:
    """The keys allowed where `loc` points, walking the models from `root` (the job file's
    JobSpec, the config's Config, ...)."""
    model: type[BaseModel] = root
    for part in loc[:-1]:
        field = model.model_fields.get(str(part))
        annotation = getattr(field, "annotation", None)
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            model = annotation
        else:
            return []
    return list(model.model_fields)


def describe(err: dict[str, Any], root: type[BaseModel]) -> str:
    """One pydantic error in words, with the keys allowed there for an unknown key."""
    kind = err["type"]
    loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and "[" in p))
    if kind == "extra_forbidden":
        allowed = ", ".join(_allowed_keys(loc, root))
        return f"unknown key '{loc[-1]}' (expected one of: {allowed})"
    if kind == "literal_error":
        expected = err.get("ctx", {}).get("expected", "")
        return f"{err['input']!r} is not allowed (expected one of {expected})"
    if kind == "missing":
        return "required key is missing"
    got = err.get("input")
    return f"{err['msg']} (got {got!r})" if not isinstance(got, dict | list) else err["msg"]


def read_yaml(path: Path, what: str, keys: str) -> tuple[str, Any]:
    """(text, mapping) of a YAML file; errors say `file:line: what is wrong`."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError(f"cannot read {what}: {exc}", where=str(path)) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        raise SpecError(f"not valid YAML: {getattr(exc, 'problem', exc)}", where=where) from None
    if not isinstance(data, dict):
        raise SpecError(f"expected a mapping of keys ({keys})", where=f"{path}:1")
    return text, data


def spec_error(
    exc: ValidationError, path: Path | str, text: str, root: type[BaseModel]
) -> SpecError:
    """Turn pydantic's errors into `file:line: key: what is wrong (expected ...)` lines."""
    lines = []
    for err in exc.errors():
        loc = tuple(
            p
            for p in err["loc"]
            if not (isinstance(p, str) and p.startswith(("literal[", "list[")))
        )
        key = ".".join(str(p) for p in loc) or "<top>"
        line = line_of(text, loc)
        lines.append(f"{path}:{line}: {key}: {describe({**err, 'loc': loc}, root)}")
    return SpecError("\n".join(lines))
