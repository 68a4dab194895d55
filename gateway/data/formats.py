"""Every known record format, turned into one canonical form.

Formats: `messages` (OpenAI/ChatML chat, legacy function calling included), `sharegpt`
(LLaMA-Factory's, tools and images included), `alpaca`, `prompt_completion`, `text`,
`preference` (TRL prompt/chosen/rejected, string, conversational or with an implicit prompt;
LLaMA-Factory's ShareGPT and Alpaca ranking forms), `openai_preference`
(input/preferred_output/non_preferred_output), `kto` (unpaired answers with a `label`),
`prompt_only` (TRL's GRPO type: a prompt and any columns its rewards read) and
`bedrock_conversation`. Reading the file is `readers`' job; this module only sees records.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gateway.data import sharegpt
from gateway.data.readers import RawRecord, container, read_records
from gateway.data.shapes import FORMATS, conflict, detect_format, shape_problem

__all__ = [
    "FORMATS",
    "Example",
    "LoadedFile",
    "RawRecord",
    "detect_format",
    "load",
    "read_records",
    "shape_problem",
]


@dataclass
class Example:
    """The canonical in-memory form every converter reads.

    `kind` is chat (messages), completion (prompt -> completion), text (raw text), preference
    (prompt messages with a chosen and a rejected assistant answer), kto (messages whose last
    assistant turn is labelled desirable or not by `label`) or prompt (no answer: `text` for a
    plain prompt, `messages` for a conversational one, and the record's other `columns`, such
    as a reference `answer`, kept for GRPO's rewards). `images` are file references from an
    `images` column (LLaMA-Factory, TRL vision data).
    """

    line: int
    kind: str
    source_format: str
    messages: list[dict[str, Any]] = field(default_factory=list)
    tools: list[Any] | None = None
    text: str | None = None
    chosen: list[dict[str, Any]] = field(default_factory=list)
    rejected: list[dict[str, Any]] = field(default_factory=list)
    label: Any = None
    images: Any = None
    columns: dict[str, Any] = field(default_factory=dict)

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
                if msg.get("tool_calls"):  # calls are trained text: two examples differ by them
                    parts.append(_calls_text(msg["tool_calls"]))
        self.__dict__["_all_text"] = text = "\n".join(p for p in parts if p)
        return text


def _calls_text(calls: Any) -> str:
    out = []
    for call in calls if isinstance(calls, list) else []:
        fn = call.get("function") if isinstance(call, dict) else None
        if isinstance(fn, dict):
            args = fn.get("arguments")
            out.append(f"{fn.get('name')} {args if isinstance(args, str) else repr(args)}")
    return "\n".join(out)


def content_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(
            p["text"] for p in content if isinstance(p, dict) and isinstance(p.get("text"), str)
        )
    return ""


def _as_messages(value: Any, role: str) -> list[dict[str, Any]]:
    """A string or a list of messages, as messages (a bare string becomes one `role` turn)."""
    if isinstance(value, list):
        return [m if isinstance(m, dict) else {"role": role, "content": m} for m in value]
    if isinstance(value, dict):
        return [value]
    return [{"role": role, "content": value}]


def _modern(msgs: list[Any]) -> list[Any]:
    """OpenAI's legacy function calling (`function_call`, role `function`) as tool calls and
    tool results, paired by id; modern messages pass through untouched."""
    if not any(
        isinstance(m, dict) and ("function_call" in m or m.get("role") == "function") for m in msgs
    ):
        return msgs
    out, pending = [], None
    for i, m in enumerate(msgs):
        if isinstance(m, dict) and isinstance(m.get("function_call"), dict):
            call = m["function_call"]
            pending = f"call_{i}_0"
            rest = {k: v for k, v in m.items() if k != "function_call"}
            out.append(
                {**rest, "tool_calls": [{"id": pending, "type": "function", "function": call}]}
            )
        elif isinstance(m, dict) and m.get("role") == "function":
            rest = {k: v for k, v in m.items() if k not in ("role", "name")}
            out.append({"role": "tool", **({"tool_call_id": pending} if pending else {}), **rest})
            pending = None
        else:
            out.append(m)
    return out


def _alpaca_turns(record: dict[str, Any]) -> list[dict[str, Any]]:
    """System, history pairs and the instruction (+ input) as messages, without the answer."""
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
    return [*msgs, {"role": "user", "content": prompt}]


def _common_prefix(a: list[Any], b: list[Any]) -> int:
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return n


def _images(record: dict[str, Any]) -> Any:
    images = record.get("images")
    return ([images] if isinstance(images, str) else images) or None


def _prompt_completion(line: int, record: dict[str, Any], fmt: str, kind: str) -> Example:
    prompt, completion = record.get("prompt"), record.get("completion")
    if isinstance(prompt, list) or isinstance(completion, list) or kind == "kto":
        msgs = [*_as_messages(prompt, "user"), *_as_messages(completion, "assistant")]
        return Example(line, "chat" if kind != "kto" else kind, fmt, messages=msgs)
    msgs = [{"role": "user", "content": prompt}, {"role": "assistant", "content": completion}]
    return Example(line, "completion", fmt, messages=msgs)


def _bedrock_turns(record: dict[str, Any]) -> list[dict[str, Any]]:
    def text_of(blocks: Any) -> Any:
        if isinstance(blocks, list) and all(
            isinstance(b, dict) and set(b) == {"text"} for b in blocks
        ):
            return "\n".join(str(b["text"]) for b in blocks)
        return blocks

    system = (
        [{"role": "system", "content": text_of(record["system"])}] if record.get("system") else []
    )
    msgs = record.get("messages") or []
    return system + [
        {**m, "content": text_of(m.get("content"))} if isinstance(m, dict) else m for m in msgs
    ]


def to_example(line: int, record: dict[str, Any], fmt: str) -> Example:
    """Convert one record of a known format; shape problems are left for the validator."""
    if fmt == "messages":
        tools = record.get("tools")
        if tools is None and record.get("functions"):
            tools = [{"type": "function", "function": f} for f in record["functions"]]
        msgs = _modern(list(record.get("messages") or []))
        return Example(line, "chat", fmt, messages=msgs, tools=tools, images=_images(record))
    if fmt == "bedrock_conversation":
        return Example(line, "chat", fmt, messages=_bedrock_turns(record))
    if fmt == "sharegpt":
        msgs = sharegpt.to_messages(record.get("conversations"), record.get("system"))
        tools = sharegpt.parse_tools(record.get("tools"))
        return Example(line, "chat", fmt, messages=msgs, tools=tools, images=_images(record))
    if fmt == "alpaca":
        msgs = [*_alpaca_turns(record), {"role": "assistant", "content": record.get("output")}]
        return Example(line, "chat", fmt, messages=msgs, images=_images(record))
    if fmt == "prompt_completion":
        return _prompt_completion(line, record, fmt, "chat")
    if fmt == "text":
        return Example(line, "text", fmt, text=record.get("text"))
    if fmt == "prompt_only":
        prompt = record.get("prompt")
        columns = {k: v for k, v in record.items() if k not in ("prompt", "images")}
        if isinstance(prompt, str):
            return Example(line, "prompt", fmt, text=prompt, columns=columns)
        msgs = _modern(_as_messages(prompt, "user"))
        return Example(line, "prompt", fmt, messages=msgs, columns=columns, images=_images(record))
    if fmt == "kto":
        label = record.get("label", record.get("kto_tag"))
        if "messages" in record:
            ex = Example(line, "kto", fmt, messages=_modern(list(record["messages"])))
        elif "conversations" in record:
            ex = Example(
                line,
                "kto",
                fmt,
                messages=sharegpt.to_messages(record["conversations"], record.get("system")),
            )
        else:
            ex = _prompt_completion(line, record, fmt, "kto")
        ex.label, ex.images = label, _images(record)
        return ex
    if fmt == "openai_preference":
        inp = record.get("input") if isinstance(record.get("input"), dict) else {}
        return Example(
            line,
            "preference",
            fmt,
            messages=list(inp.get("messages") or []),
            tools=inp.get("tools"),
            chosen=_as_messages(record.get("preferred_output"), "assistant"),
            rejected=_as_messages(record.get("non_preferred_output"), "assistant"),
        )
    return _preference(line, record, fmt)


def _preference(line: int, record: dict[str, Any], fmt: str) -> Example:
    """TRL's pairs (explicit or implicit prompt), LLaMA-Factory's ShareGPT and Alpaca rankings."""
    chosen, rejected = record.get("chosen"), record.get("rejected")
    if "conversations" in record:
        return Example(
            line,
            "preference",
            fmt,
            messages=sharegpt.to_messages(record.get("conversations"), record.get("system")),
            tools=sharegpt.parse_tools(record.get("tools")),
            chosen=sharegpt.answer(chosen),
            rejected=sharegpt.answer(rejected),
            images=_images(record),
        )
    if "instruction" in record:
        prompt = _alpaca_turns(record)
    elif record.get("prompt") not in (None, "", []):
        prompt = _as_messages(record["prompt"], "user")
    elif isinstance(chosen, list) and isinstance(rejected, list):  # implicit prompt (TRL)
        n = _common_prefix(chosen, rejected)
        prompt, chosen, rejected = chosen[:n], chosen[n:], rejected[n:]
    else:
        prompt = []
    return Example(
        line,
        "preference",
        fmt,
        messages=prompt,
        chosen=_as_messages(chosen, "assistant"),
        rejected=_as_messages(rejected, "assistant"),
    )


@dataclass
class LoadedFile:
    path: Path
    format: str | None
    examples: list[Example]
    read_errors: list[RawRecord]
    formats_by_line: dict[str, list[int]]
    unknown_lines: list[tuple[int, str]]
    shape_errors: list[tuple[int, str]] = field(default_factory=list)
    conflicts: list[tuple[int, str]] = field(default_factory=list)
    container: str = "jsonl"
    notes: list[str] = field(default_factory=list)


def _unknown(data: Any) -> str:
    if not isinstance(data, dict):
        kind = {list: "an array", str: "a string", bool: "a boolean", type(None): "null"}
        what = kind.get(type(data), "a number")
        return f"record is {what}, not an object (expected an object with the keys of one format)"
    keys = ", ".join(sorted(map(str, data))[:6]) or "no keys"
    return (
        f"unrecognised record with keys {keys} (expected the keys of one format: messages, "
        "conversations, instruction/output, prompt/completion, text, prompt/chosen/rejected, or "
        "a prompt alone)"
    )


def load(
    path: Path, fmt: str | None = None, *, mapping: sharegpt.Mapping | None = None
) -> LoadedFile:
    """Read a file into canonical examples, keeping every unreadable line and format per line.

    `mapping` renames LLaMA-Factory columns (a dataset_info.json entry); without one, an entry
    for this file in a dataset_info.json beside it is used, and said so in `notes`."""
    path = Path(path)
    notes: list[str] = []
    if mapping is None:
        entry = sharegpt.entry_beside(path)
        if entry is not None:
            mapping = sharegpt.Mapping(entry)
            notes.append(f"columns mapped by {path.parent / 'dataset_info.json'}")
    loaded = LoadedFile(path, None, [], [], {}, [], container=container(path), notes=notes)
    for raw in read_records(path):
        if raw.error:
            loaded.read_errors.append(raw)
            continue
        data = mapping.apply(raw.data) if mapping else raw.data
        record_fmt = fmt or detect_format(data)
        if record_fmt is None or not isinstance(data, dict):
            loaded.unknown_lines.append((raw.line, _unknown(data)))
            continue
        loaded.formats_by_line.setdefault(record_fmt, []).append(raw.line)
        problem = shape_problem(data, record_fmt)
        if problem:
            loaded.shape_errors.append((raw.line, f"{record_fmt} record: {problem}"))
            continue
        clash = conflict(data)
        if clash:
            loaded.conflicts.append((raw.line, clash))
        loaded.examples.append(to_example(raw.line, data, record_fmt))
    by = loaded.formats_by_line
    loaded.format = max(by, key=lambda k: len(by[k])) if by else None
    return loaded
