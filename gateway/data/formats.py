"""Reading training files and turning every known format into one canonical form.

Formats: `messages` (OpenAI/ChatML chat), `sharegpt`, `alpaca`, `prompt_completion`, `text`,
`preference` (TRL prompt/chosen/rejected, string or conversational, and OpenAI DPO
input/preferred_output/non_preferred_output). Files: JSONL, JSON arrays, Parquet. Lines are
1-based; for a JSON array or Parquet file, a record's line is its index + 1.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

FORMATS = ("messages", "sharegpt", "alpaca", "prompt_completion", "text", "preference")
SHAREGPT_ROLES = {
    "human": "user",
    "user": "user",
    "gpt": "assistant",
    "assistant": "assistant",
    "system": "system",
    "function_call": "assistant",
    "observation": "tool",
    "tool": "tool",
}


@dataclass
class RawRecord:
    """One record as read, or the reason it could not be read."""

    line: int
    data: Any = None
    error: str | None = None


@dataclass
class Example:
    """The canonical in-memory form every converter reads.

    `kind` is chat (messages), completion (prompt -> completion), text (raw text) or preference
    (prompt messages with a chosen and a rejected assistant answer).
    """

    line: int
    kind: str
    source_format: str
    messages: list[dict[str, Any]] = field(default_factory=list)
    tools: list[Any] | None = None
    text: str | None = None
    chosen: list[dict[str, Any]] = field(default_factory=list)
    rejected: list[dict[str, Any]] = field(default_factory=list)

    def all_text(self) -> str:
        """Every piece of text in the example, for dedup, n-grams and token estimates (cached:
        examples are not mutated after loading)."""
        cached = self.__dict__.get("_all_text")
        if cached is not None:
            return cached
        parts: list[str] = [self.text if isinstance(self.text, str) else ""]
        for msg in [*self.messages, *self.chosen, *self.rejected]:
            if isinstance(msg, dict):
                parts.append(content_text(msg.get("content")))
        self.__dict__["_all_text"] = text = "\n".join(p for p in parts if p)
        return text


def content_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(
            p["text"] for p in content if isinstance(p, dict) and isinstance(p.get("text"), str)
        )
    return ""


# The top-level shape each format needs: key -> (accepted types, what to say when it is wrong)
_SHAPES: dict[str, dict[str, tuple[tuple[type, ...], str]]] = {
    "messages": {
        "messages": ((list,), "a list of {role, content}"),
        "tools": ((list, type(None)), "a list"),
    },
    "sharegpt": {
        "conversations": ((list,), "a list of {from, value}"),
        "system": ((str, type(None)), "a string"),
    },
    "alpaca": {
        "instruction": ((str,), "a string"),
        "output": ((str,), "a string"),
        "input": ((str, type(None)), "a string"),
        "system": ((str, type(None)), "a string"),
        "history": ((list, type(None)), "a list of [user, assistant] pairs"),
    },
    "prompt_completion": {
        "prompt": ((str, list), "a string or messages"),
        "completion": ((str, list), "a string or messages"),
    },
    "text": {"text": ((str,), "a string")},
    "preference": {
        "prompt": ((str, list, type(None)), "a string or messages"),
        "chosen": ((str, list, dict), "a string or messages"),
        "rejected": ((str, list, dict), "a string or messages"),
        "input": ((dict, type(None)), "{messages: [...]}"),
        "preferred_output": ((list, str, dict), "messages"),
        "non_preferred_output": ((list, str, dict), "messages"),
    },
}


def shape_problem(record: dict[str, Any], fmt: str) -> str | None:
    """Why a record of format `fmt` has the wrong top-level shape, or None."""
    for key, (types, expected) in _SHAPES.get(fmt, {}).items():
        if key in record and not isinstance(record[key], types):
            return f"`{key}` is {type(record[key]).__name__} (expected {expected})"
    if fmt == "preference" and "preferred_output" in record:
        inp = record.get("input")
        if not isinstance(inp, dict) or not isinstance(inp.get("messages"), list):
            return "`input` has no messages list (expected {messages: [...]})"
    return None


def read_records(path: Path) -> Iterator[RawRecord]:
    """Yield records with their line numbers; unreadable lines come back with an error."""
    path = Path(path)
    if path.suffix.lower() == ".parquet":
        yield from _read_parquet(path)
        return
    with path.open("rb") as fh:
        head = fh.read(4096)
    stripped = head.lstrip(b"\xef\xbb\xbf").lstrip()
    if stripped.startswith(b"["):
        yield from _read_array(path)
        return
    with path.open("rb") as fh:
        for number, raw in enumerate(fh, start=1):
            if number == 1 and raw.startswith(b"\xef\xbb\xbf"):
                yield RawRecord(
                    1,
                    error="file starts with a UTF-8 byte-order mark (expected plain UTF-8 without BOM)",
                )
                raw = raw[3:]
            if not raw.strip():
                continue
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                yield RawRecord(
                    number, error=f"not valid UTF-8 at byte {exc.start} (expected UTF-8 text)"
                )
                continue
            try:
                yield RawRecord(number, json.loads(text))
            except ValueError as exc:
                msg = getattr(exc, "msg", str(exc))
                yield RawRecord(
                    number,
                    error=f"invalid JSON: {msg} at column {getattr(exc, 'colno', '?')} (expected one JSON object per line)",
                )


def _read_array(path: Path) -> Iterator[RawRecord]:
    raw = path.read_bytes()
    if raw.startswith(b"\xef\xbb\xbf"):
        yield RawRecord(
            1, error="file starts with a UTF-8 byte-order mark (expected plain UTF-8 without BOM)"
        )
        raw = raw[3:]
    try:
        records = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        yield RawRecord(1, error=f"not valid UTF-8 at byte {exc.start} (expected UTF-8 text)")
        return
    except ValueError as exc:
        yield RawRecord(
            getattr(exc, "lineno", 1), error=f"invalid JSON array: {getattr(exc, 'msg', exc)}"
        )
        return
    for index, record in enumerate(records, start=1):
        yield RawRecord(index, record)


def _read_parquet(path: Path) -> Iterator[RawRecord]:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        yield RawRecord(1, error="reading Parquet needs pyarrow (pip install 'tunegate[data]')")
        return
    index = 0
    for batch in pq.ParquetFile(path).iter_batches(batch_size=2048):
        for row in batch.to_pylist():
            index += 1
            yield RawRecord(index, row)


def detect_format(record: Any) -> str | None:
    """The format of one record, or None when no known format fits."""
    if not isinstance(record, dict):
        return None
    keys = set(record)
    if ("chosen" in keys and "rejected" in keys) or "preferred_output" in keys:
        return "preference"
    if "messages" in keys:
        return "messages"
    if "conversations" in keys:
        return "sharegpt"
    if "instruction" in keys and "output" in keys:
        return "alpaca"
    if "prompt" in keys and "completion" in keys:
        return "prompt_completion"
    if "text" in keys:
        return "text"
    return None


def _as_messages(value: Any, role: str) -> list[dict[str, Any]]:
    """A string or a list of messages, as messages (a bare string becomes one `role` turn)."""
    if isinstance(value, list):
        return [m if isinstance(m, dict) else {"role": role, "content": m} for m in value]
    if isinstance(value, dict):
        return [value]
    return [{"role": role, "content": value}]


def to_example(line: int, record: dict[str, Any], fmt: str) -> Example:
    """Convert one record of a known format; shape problems are left for the validator."""
    if fmt == "messages":
        return Example(
            line,
            "chat",
            fmt,
            messages=list(record.get("messages") or []),
            tools=record.get("tools"),
        )
    if fmt == "sharegpt":
        msgs = []
        for turn in record.get("conversations") or []:
            if not isinstance(turn, dict):
                msgs.append({"role": None, "content": turn})
                continue
            speaker = turn.get("from")
            msg: dict[str, Any] = {
                "role": SHAREGPT_ROLES.get(speaker, speaker),
                "content": turn.get("value"),
            }
            if speaker == "function_call":
                msg = {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": _sharegpt_call(turn.get("value")),
                }
            msgs.append(msg)
        if record.get("system"):
            msgs.insert(0, {"role": "system", "content": record["system"]})
        return Example(line, "chat", fmt, messages=msgs, tools=record.get("tools"))
    if fmt == "alpaca":
        msgs = [{"role": "system", "content": record["system"]}] if record.get("system") else []
        for pair in record.get("history") or []:
            if isinstance(pair, list | tuple) and len(pair) == 2:
                msgs += [
                    {"role": "user", "content": pair[0]},
                    {"role": "assistant", "content": pair[1]},
                ]
        prompt = record.get("instruction") or ""
        if record.get("input"):
            prompt = f"{prompt}\n\n{record['input']}"
        msgs += [
            {"role": "user", "content": prompt},
            {"role": "assistant", "content": record.get("output")},
        ]
        return Example(line, "chat", fmt, messages=msgs)
    if fmt == "prompt_completion":
        prompt, completion = record.get("prompt"), record.get("completion")
        if isinstance(prompt, list) or isinstance(completion, list):
            return Example(
                line,
                "chat",
                fmt,
                messages=[*_as_messages(prompt, "user"), *_as_messages(completion, "assistant")],
            )
        return Example(
            line,
            "completion",
            fmt,
            messages=[
                {"role": "user", "content": prompt},
                {"role": "assistant", "content": completion},
            ],
        )
    if fmt == "text":
        return Example(line, "text", fmt, text=record.get("text"))
    # preference
    if "preferred_output" in record:
        prompt = (
            (record.get("input") or {}).get("messages", [])
            if isinstance(record.get("input"), dict)
            else []
        )
        return Example(
            line,
            "preference",
            fmt,
            messages=list(prompt),
            tools=(record.get("input") or {}).get("tools")
            if isinstance(record.get("input"), dict)
            else None,
            chosen=_as_messages(record.get("preferred_output"), "assistant"),
            rejected=_as_messages(record.get("non_preferred_output"), "assistant"),
        )
    return Example(
        line,
        "preference",
        fmt,
        messages=_as_messages(record.get("prompt", []), "user")
        if record.get("prompt") not in (None, "")
        else [],
        chosen=_as_messages(record.get("chosen"), "assistant"),
        rejected=_as_messages(record.get("rejected"), "assistant"),
    )


def _sharegpt_call(value: Any) -> list[dict[str, Any]]:
    try:
        call = json.loads(value) if isinstance(value, str) else value
    except ValueError:
        call = {"name": None, "arguments": value}
    if not isinstance(call, dict):
        call = {"name": None, "arguments": call}
    args = call.get("arguments", {})
    return [
        {
            "id": "call_0",
            "type": "function",
            "function": {
                "name": call.get("name"),
                "arguments": args if isinstance(args, str) else json.dumps(args),
            },
        }
    ]


@dataclass
class LoadedFile:
    path: Path
    format: str | None
    examples: list[Example]
    read_errors: list[RawRecord]
    formats_by_line: dict[str, list[int]]
    unknown_lines: list[int]
    shape_errors: list[tuple[int, str]] = field(default_factory=list)


def load(path: Path, fmt: str | None = None) -> LoadedFile:
    """Read a file into canonical examples, keeping every unreadable line and format per line."""
    examples: list[Example] = []
    errors: list[RawRecord] = []
    by_format: dict[str, list[int]] = {}
    unknown: list[int] = []
    shapes: list[tuple[int, str]] = []
    for raw in read_records(path):
        if raw.error:
            errors.append(raw)
            continue
        record_fmt = fmt or detect_format(raw.data)
        if record_fmt is None or not isinstance(raw.data, dict):
            unknown.append(raw.line)
            continue
        by_format.setdefault(record_fmt, []).append(raw.line)
        problem = shape_problem(raw.data, record_fmt)
        if problem:
            shapes.append((raw.line, f"{record_fmt} record: {problem}"))
            continue
        examples.append(to_example(raw.line, raw.data, record_fmt))
    majority = max(by_format, key=lambda k: len(by_format[k])) if by_format else None
    return LoadedFile(Path(path), majority, examples, errors, by_format, unknown, shapes)
