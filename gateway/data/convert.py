"""Writers from the canonical form to what each backend (or format) takes.

Every writer returns one JSON record per example, or raises ConversionError naming the line
when the example cannot be expressed in the target. Files are written to a temporary name and
renamed when complete; the input is never touched.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from gateway.data.formats import Example, content_text
from gateway.errors import ConversionError

SHAREGPT_FROM = {"user": "human", "assistant": "gpt", "system": "system", "tool": "observation"}


def _fail(ex: Example, target: str, why: str) -> ConversionError:
    return ConversionError(
        f"cannot write {ex.kind} example as {target}: {why}", where=f"line {ex.line}"
    )


def _messages(ex: Example, target: str) -> dict[str, Any]:
    if ex.kind == "text":
        raise _fail(
            ex, target, "plain text has no turns (expected chat, completion or preference data)"
        )
    if ex.kind == "preference":
        raise _fail(
            ex,
            target,
            "preference pairs need a preference target (openai, together, fireworks, trl, preference)",
        )
    out: dict[str, Any] = {"messages": ex.messages}
    if ex.tools:
        out["tools"] = ex.tools
    return out


def _dpo_openai(ex: Example, target: str) -> dict[str, Any]:
    if ex.kind != "preference":
        return _messages(ex, target)
    inp: dict[str, Any] = {"messages": ex.messages}
    if ex.tools:
        inp["tools"] = ex.tools
    return {"input": inp, "preferred_output": ex.chosen, "non_preferred_output": ex.rejected}


def _together(ex: Example, target: str) -> dict[str, Any]:
    if ex.kind == "text":
        return {"text": ex.text}
    if ex.kind == "completion":
        return {"prompt": ex.messages[0]["content"], "completion": ex.messages[1]["content"]}
    return _dpo_openai(ex, target)


def _trl(ex: Example, target: str) -> dict[str, Any]:
    if ex.kind == "text":
        return {"text": ex.text}
    if ex.kind == "completion":
        return {"prompt": ex.messages[0]["content"], "completion": ex.messages[1]["content"]}
    if ex.kind == "preference":
        return {"prompt": ex.messages, "chosen": ex.chosen, "rejected": ex.rejected}
    return _messages(ex, target)


def _prompt_completion(ex: Example, target: str) -> dict[str, Any]:
    """Flatten a conversation: everything before the last assistant turn is the prompt."""
    if ex.kind == "completion":
        return {"prompt": ex.messages[0]["content"], "completion": ex.messages[1]["content"]}
    if ex.kind != "chat":
        raise _fail(ex, target, "only chat or completion examples flatten to prompt/completion")
    last = max((i for i, m in enumerate(ex.messages) if m.get("role") == "assistant"), default=None)
    if last is None:
        raise _fail(ex, target, "no assistant turn")
    if any(m.get("tool_calls") or m.get("role") == "tool" for m in ex.messages):
        raise _fail(ex, target, "tool calls do not flatten to prompt/completion")
    prompt = "\n\n".join(
        f"{m['role']}: {content_text(m.get('content'))}" if i else content_text(m.get("content"))
        for i, m in enumerate(ex.messages[:last])
    )
    return {"prompt": prompt, "completion": content_text(ex.messages[last].get("content"))}


def _sharegpt(ex: Example, target: str) -> dict[str, Any]:
    body = _messages(ex, target)
    turns = []
    for m in body["messages"]:
        if m.get("tool_calls"):
            fn = m["tool_calls"][0]["function"]
            turns.append(
                {
                    "from": "function_call",
                    "value": json.dumps(
                        {"name": fn["name"], "arguments": json.loads(fn["arguments"])}
                    ),
                }
            )
        else:
            turns.append({"from": SHAREGPT_FROM[m["role"]], "value": m.get("content")})
    out: dict[str, Any] = {"conversations": turns}
    if ex.tools:
        out["tools"] = ex.tools
    return out


def _alpaca(ex: Example, target: str) -> dict[str, Any]:
    msgs = _messages(ex, target)["messages"]
    system = msgs[0]["content"] if msgs and msgs[0].get("role") == "system" else None
    turns = msgs[1:] if system is not None else msgs
    if len(turns) % 2 or any(
        m.get("role") != r for m, r in zip(turns, ["user", "assistant"] * len(turns), strict=False)
    ):
        raise _fail(ex, target, "alpaca needs alternating user/assistant pairs")
    pairs = [[turns[i]["content"], turns[i + 1]["content"]] for i in range(0, len(turns), 2)]
    out: dict[str, Any] = {"instruction": pairs[-1][0], "input": "", "output": pairs[-1][1]}
    if system is not None:
        out["system"] = system
    if len(pairs) > 1:
        out["history"] = pairs[:-1]
    return out


def _text(ex: Example, target: str) -> dict[str, Any]:
    if ex.kind != "text":
        raise _fail(ex, target, "only plain-text examples are written as text")
    return {"text": ex.text}


def _bedrock(ex: Example, target: str) -> dict[str, Any]:
    """Bedrock text models (Llama) take prompt/completion records."""
    return _prompt_completion(ex, target)


def _bedrock_conversation(ex: Example, target: str) -> dict[str, Any]:
    """Bedrock conversational schema (Nova and other converse models)."""
    msgs = _messages(ex, target)["messages"]
    system = [{"text": m["content"]} for m in msgs if m.get("role") == "system"]
    turns = [
        {"role": m["role"], "content": [{"text": content_text(m.get("content"))}]}
        for m in msgs
        if m.get("role") in ("user", "assistant")
    ]
    return {"schemaVersion": "bedrock-conversation-2024", "system": system, "messages": turns}


WRITERS: dict[str, Callable[[Example, str], dict[str, Any]]] = {
    "messages": _messages,
    "sharegpt": _sharegpt,
    "alpaca": _alpaca,
    "prompt_completion": _prompt_completion,
    "text": _text,
    "preference": _trl,
    "openai": _dpo_openai,
    "together": _together,
    "fireworks": _dpo_openai,
    "bedrock": _bedrock,
    "bedrock-conversation": _bedrock_conversation,
    "trl": _trl,
    "mlx": _trl,
}
TARGETS = tuple(sorted(WRITERS))


def records(examples: Iterable[Example], target: str) -> Iterable[dict[str, Any]]:
    writer = WRITERS[target]
    for ex in examples:
        yield writer(ex, target)


def write_jsonl(path: Path, rows: Iterable[dict[str, Any]]) -> int:
    """Write rows to `path` through a temporary file renamed on success."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    count = 0
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            for row in rows:
                fh.write(json.dumps(row, ensure_ascii=False) + "\n")
                count += 1
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return count


def bedrock_target(base: str) -> str:
    """Bedrock's record schema for a base model's family: Llama and other text models take
    prompt/completion; conversational models (Nova, closed chat models) the conversation schema."""
    from gateway.catalog import load_catalog

    model = load_catalog().model(base)
    return "bedrock" if (model.chat_template or "").startswith("llama") else "bedrock-conversation"


def to_hf_dataset(examples: list[Example]):  # -> datasets.Dataset
    """The examples as a Hugging Face `datasets.Dataset` in TRL's format (needs the local extra)."""
    from datasets import Dataset

    return Dataset.from_list(list(records(examples, "trl")))


def convert(
    examples: list[Example], target: str, out: Path, valid: list[Example] | None = None
) -> list[Path]:
    """Write `examples` in `target`; `mlx` writes a folder with train.jsonl (and valid.jsonl)."""
    if target not in WRITERS:
        raise ConversionError(f"unknown target '{target}' (expected one of {', '.join(TARGETS)})")
    if target == "mlx":
        written = [Path(out) / "train.jsonl"]
        write_jsonl(written[0], list(records(examples, target)))
        if valid:
            written.append(Path(out) / "valid.jsonl")
            write_jsonl(written[1], list(records(valid, target)))
        return written
    rows = list(records(examples, target))  # convert everything before writing anything
    write_jsonl(Path(out), rows)
    return [Path(out)]
