"""A small evaluator of the Go text/template subset Ollama chat templates use, plus Ollama's way
of filling a template from a chat request, so tests can render a TEMPLATE without Ollama.

Supported: text, `{{- -}}` trimming, `if / else if / else / end`, `range` (with `$i, $x :=`),
`$v := x`, `$v = x` (assignment reaches the enclosing scope, as in Go >= 1.11), fields `.X`,
`$.X`, `$v`, string literals, and the functions eq, ne, and, or, not, len, index.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from typing import Any

_ACTION = re.compile(r"\{\{(-\s)?(.*?)(\s-)?\}\}", re.S)


@dataclass
class _Node:
    kind: str  # text | out | if | range | set | assign
    arg: str = ""
    body: list[_Node] = field(default_factory=list)
    branches: list[tuple[str | None, list[_Node]]] = field(default_factory=list)
    names: tuple[str, ...] = ()


def _lex(src: str) -> list[tuple[str, str]]:
    tokens: list[tuple[str, str]] = []
    pos = 0
    for m in _ACTION.finditer(src):
        text = src[pos : m.start()]
        if m.group(1):
            text = text.rstrip()
        if tokens and tokens[-1][0] == "trim-next":
            tokens.pop()
            text = text.lstrip()
        tokens.append(("text", text))
        tokens.append(("action", m.group(2).strip()))
        if m.group(3):
            tokens.append(("trim-next", ""))
        pos = m.end()
    text = src[pos:]
    if tokens and tokens[-1][0] == "trim-next":
        tokens.pop()
        text = text.lstrip()
    tokens.append(("text", text))
    return tokens


def _parse(tokens: list[tuple[str, str]], i: int = 0) -> tuple[list[_Node], int, str]:
    """Nodes until an `else...`/`end` action; returns (nodes, next index, the stopping action)."""
    nodes: list[_Node] = []
    while i < len(tokens):
        kind, val = tokens[i]
        i += 1
        if kind == "text":
            if val:
                nodes.append(_Node("text", val))
            continue
        if val == "end" or val.startswith("else"):
            return nodes, i, val
        if val.startswith("if "):
            node = _Node("if")
            cond: str | None = val[3:]
            while True:
                body, i, stop = _parse(tokens, i)
                node.branches.append((cond, body))
                if stop == "end":
                    break
                cond = stop[len("else if ") :] if stop.startswith("else if ") else None
            nodes.append(node)
        elif val.startswith("range "):
            expr = val[6:]
            names: tuple[str, ...] = ()
            if ":=" in expr:
                left, expr = expr.split(":=", 1)
                names = tuple(n.strip() for n in left.split(","))
            body, i, stop = _parse(tokens, i)
            assert stop == "end", "range with else is not supported"
            nodes.append(_Node("range", expr.strip(), body, names=names))
        elif m := re.fullmatch(r"(\$\w+)\s*(:?=)\s*(.+)", val, re.S):
            nodes.append(_Node("set" if m[2] == ":=" else "assign", m[3], names=(m[1],)))
        else:
            nodes.append(_Node("out", val))
    return nodes, i, ""


class _Scope:
    def __init__(self, root: Any):
        self.frames: list[dict[str, Any]] = [{"$": root}]

    def get(self, name: str) -> Any:
        for frame in reversed(self.frames):
            if name in frame:
                return frame[name]
        raise KeyError(name)

    def assign(self, name: str, value: Any) -> None:
        for frame in reversed(self.frames):
            if name in frame:
                frame[name] = value
                return
        raise KeyError(f"assignment to undeclared {name}")


def _truthy(v: Any) -> bool:
    return bool(v)


def _field(obj: Any, name: str) -> Any:
    return obj.get(name) if isinstance(obj, dict) else getattr(obj, name)


def _eval(expr: str, dot: Any, scope: _Scope) -> Any:
    words = _split(expr.strip())
    return _call(words, dot, scope)


def _split(expr: str) -> list[str]:
    """Words of a pipeline, keeping quoted strings and parenthesised groups whole."""
    out, depth, cur, quote = [], 0, "", False
    for ch in expr:
        if ch == '"' and depth == 0:
            quote = not quote
        if ch == "(" and not quote:
            depth += 1
        if ch == ")" and not quote:
            depth -= 1
        if ch.isspace() and depth == 0 and not quote:
            if cur:
                out.append(cur)
            cur = ""
        else:
            cur += ch
    if cur:
        out.append(cur)
    return out


def _atom(word: str, dot: Any, scope: _Scope) -> Any:
    if word.startswith("("):
        return _eval(word[1:-1], dot, scope)
    if word.startswith('"'):
        return shlex.split(word)[0] if word != '""' else ""
    if word == ".":
        return dot
    if word.startswith("$"):
        base, _, rest = word.partition(".")
        value = scope.get(base)
        for part in filter(None, rest.split(".")):
            value = _field(value, part)
        return value
    if word.startswith("."):
        value = dot
        for part in filter(None, word.split(".")):
            value = _field(value, part)
        return value
    if re.fullmatch(r"-?\d+", word):
        return int(word)
    raise ValueError(f"unsupported word {word!r}")


_FUNCS = {
    "eq": lambda a, *b: any(a == x for x in b),
    "ne": lambda a, b: a != b,
    "and": lambda *a: next((x for x in a if not _truthy(x)), a[-1]),
    "or": lambda *a: next((x for x in a if _truthy(x)), a[-1]),
    "not": lambda a: not _truthy(a),
    "len": len,
    "index": lambda a, i: a[i],
}


def _call(words: list[str], dot: Any, scope: _Scope) -> Any:
    if words[0] in _FUNCS:
        return _FUNCS[words[0]](*(_atom(w, dot, scope) for w in words[1:]))
    assert len(words) == 1, f"unsupported pipeline {words}"
    return _atom(words[0], dot, scope)


def _run(nodes: list[_Node], dot: Any, scope: _Scope, out: list[str]) -> None:
    for node in nodes:
        if node.kind == "text":
            out.append(node.arg)
        elif node.kind == "out":
            value = _eval(node.arg, dot, scope)
            out.append("" if value is None else str(value))
        elif node.kind == "set":
            scope.frames[-1][node.names[0]] = _eval(node.arg, dot, scope)
        elif node.kind == "assign":
            scope.assign(node.names[0], _eval(node.arg, dot, scope))
        elif node.kind == "if":
            for cond, body in node.branches:
                if cond is None or _truthy(_eval(cond, dot, scope)):
                    scope.frames.append({})
                    _run(body, dot, scope, out)
                    scope.frames.pop()
                    break
        elif node.kind == "range":
            for i, item in enumerate(_eval(node.arg, dot, scope) or []):
                frame: dict[str, Any] = {}
                if len(node.names) == 2:
                    frame[node.names[0]], frame[node.names[1]] = i, item
                elif len(node.names) == 1:
                    frame[node.names[0]] = item
                scope.frames.append(frame)
                _run(node.body, item, scope, out)
                scope.frames.pop()


def execute(template: str, data: dict[str, Any]) -> str:
    nodes, _, stop = _parse(_lex(template))
    assert stop == "", f"unbalanced template: {stop}"
    out: list[str] = []
    _run(nodes, data, _Scope(data), out)
    return "".join(out)


def ollama_values(messages: list[dict[str, str]], modelfile_system: str | None) -> dict[str, Any]:
    """What Ollama passes a chat template: the Modelfile's SYSTEM is prepended when the request
    has no system message; consecutive messages of one role are joined; `.System` holds every
    system message (server/routes.go and template/template.go `collate`)."""
    msgs = [dict(m) for m in messages]
    if modelfile_system and (not msgs or msgs[0]["role"] != "system"):
        msgs.insert(0, {"role": "system", "content": modelfile_system})
    system, collated = [], []
    for m in msgs:
        if m["role"] == "system":
            system.append(m["content"])
        if collated and collated[-1]["Role"] == m["role"]:
            collated[-1]["Content"] += "\n\n" + m["content"]
        else:
            collated.append({"Role": m["role"], "Content": m["content"]})
    return {"System": "\n\n".join(system), "Messages": collated}
