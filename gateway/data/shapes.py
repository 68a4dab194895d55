"""Which format a record is in, and whether its top-level keys have the types that format
needs: cheap checks on the raw record, before anything is converted."""

from __future__ import annotations

from typing import Any

FORMATS = (
    "messages",
    "sharegpt",
    "alpaca",
    "prompt_completion",
    "prompt_only",
    "text",
    "preference",
    "openai_preference",
    "kto",
    "bedrock_conversation",
)

_TURNS = "a list of {from, value}"
_MSGS = "a string or messages"
# The top-level shape each format needs: key -> (accepted types, what to say when it is wrong)
_SHAPES: dict[str, dict[str, tuple[tuple[type, ...], str]]] = {
    "messages": {
        "messages": ((list,), "a list of {role, content}"),
        "tools": ((list, type(None)), "a list"),
        "functions": ((list, type(None)), "a list"),
        "images": ((list, str, type(None)), "a list of image paths"),
    },
    "sharegpt": {
        "conversations": ((list,), _TURNS),
        "system": ((str, type(None)), "a string"),
        "tools": ((str, list, type(None)), "a JSON string or a list of functions"),
        "images": ((list, str, type(None)), "a list of image paths"),
    },
    "alpaca": {
        "instruction": ((str,), "a string"),
        "output": ((str,), "a string"),
        "input": ((str, type(None)), "a string"),
        "system": ((str, type(None)), "a string"),
        "history": ((list, type(None)), "a list of [user, assistant] pairs"),
        "images": ((list, str, type(None)), "a list of image paths"),
    },
    "prompt_completion": {
        "prompt": ((str, list), _MSGS),
        "completion": ((str, list), _MSGS),
    },
    # TRL's prompt-only type (GRPO): the prompt, and any columns the rewards read by name
    "prompt_only": {"prompt": ((str, list), _MSGS)},
    "text": {"text": ((str,), "a string")},
    "preference": {
        "prompt": ((str, list, type(None)), _MSGS),
        "chosen": ((str, list, dict), _MSGS),
        "rejected": ((str, list, dict), _MSGS),
        "conversations": ((list, type(None)), _TURNS),
        "instruction": ((str, type(None)), "a string"),
        "tools": ((str, list, type(None)), "a JSON string or a list of functions"),
    },
    "openai_preference": {
        "input": ((dict,), "{messages: [...]}"),
        "preferred_output": ((list, dict), "a list of assistant messages"),
        "non_preferred_output": ((list, dict), "a list of assistant messages"),
    },
    "kto": {
        "prompt": ((str, list), _MSGS),
        "completion": ((str, list), _MSGS),
        "messages": ((list,), "a list of {role, content}"),
        "conversations": ((list,), _TURNS),
    },
    "bedrock_conversation": {
        "messages": ((list,), "a list of {role, content: [{text}]}"),
        "system": ((list, type(None)), "a list of {text}"),
    },
}
# Key sets that each mean a whole format: a record with two of them is ambiguous.
_FORMAT_KEYS = (
    ("messages",),
    ("conversations",),
    ("text",),
    ("prompt", "completion"),
    ("instruction", "output"),
)


def shape_problem(record: dict[str, Any], fmt: str) -> str | None:
    """Why a record of format `fmt` has the wrong top-level shape, or None."""
    for key, (types, expected) in _SHAPES.get(fmt, {}).items():
        if key in record and not isinstance(record[key], types):
            return f"`{key}` is {type(record[key]).__name__} (expected {expected})"
    if fmt == "openai_preference":
        inp = record.get("input")
        if not isinstance(inp, dict) or not isinstance(inp.get("messages"), list):
            return "`input` has no messages list (expected {messages: [...]})"
    if fmt == "kto" and not kto_body(record):
        return "KTO record without messages or prompt/completion (expected one of them and `label`)"
    return None


def conflict(record: dict[str, Any]) -> str | None:
    """A note when a record carries the keys of two formats (one of them is ignored)."""
    present = [keys for keys in _FORMAT_KEYS if all(k in record for k in keys)]
    if len(present) < 2 or "chosen" in record:
        return None
    names = [" and ".join(f"`{k}`" for k in keys) for keys in present]
    return f"record has both {names[0]} and {names[1]}: read as {names[0]}, the other is ignored"


def detect_format(record: Any) -> str | None:
    """The format of one record, or None when no known format fits."""
    if not isinstance(record, dict):
        return None
    keys = set(record)
    if "preferred_output" in keys:
        return "openai_preference"
    if "chosen" in keys and "rejected" in keys:
        return "preference"
    if ("kto_tag" in keys or isinstance(record.get("label"), bool)) and kto_body(record):
        return "kto"
    if "messages" in keys:
        return "bedrock_conversation" if "schemaVersion" in keys else "messages"
    if "conversations" in keys:
        return "sharegpt"
    if "instruction" in keys and "output" in keys:
        return "alpaca"
    if "prompt" in keys and "completion" in keys:
        return "prompt_completion"
    if "text" in keys:
        return "text"
    if "prompt" in keys:
        return "prompt_only"
    return None


def kto_body(record: dict[str, Any]) -> bool:
    return "messages" in record or "conversations" in record or "completion" in record
