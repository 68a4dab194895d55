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

from gateway.data import sharegpt
from gateway.data.formats import Example, content_text
from gateway.errors import ConversionError

# What each target can carry beyond plain text turns (everything else is refused by line).
_KTO_TARGETS = {"messages", "sharegpt", "trl"}  # a `label` beside the conversation
_IMAGE_COLUMN_TARGETS = {"messages", "sharegpt", "alpaca", "trl"}  # an `images` column
_TEXT_ONLY_TARGETS = {"prompt_completion", "bedrock", "bedrock-conversation", "alpaca", "sharegpt"}


def _fail(ex: Example, target: str, why: str) -> ConversionError:
    return ConversionError(
        f"cannot write {ex.kind} example as {target}: {why}", where=f"line {ex.line}"
    )


def _guard(ex: Example, target: str) -> None:
    """Refuse what `target` cannot express: a KTO label, an images column, image parts."""
    if ex.kind == "prompt" and target != "trl":
        raise _fail(
            ex,
            target,
            f"a prompt without an answer trains only with GRPO, and {target} has no "
            "prompt-only form (expected --to trl)",
        )
    if ex.kind == "kto" and target not in _KTO_TARGETS:
        raise _fail(
            ex,
            target,
            f"{target} has no label, so the undesirable (label false) answers would be trained "
            "as targets (expected --to trl, messages or sharegpt)",
        )
    if ex.images and target not in _IMAGE_COLUMN_TARGETS:
        n = len(ex.images) if isinstance(ex.images, list) else 1
        raise _fail(
            ex,
            target,
            f"it has {n} image(s) in `images` and {target} cannot carry them "
            "(expected text-only examples, or --to messages, sharegpt or trl)",
        )
    if target in _TEXT_ONLY_TARGETS:
        for i, m in enumerate([*ex.messages, *ex.chosen, *ex.rejected]):
            content = m.get("content") if isinstance(m, dict) else None
            if isinstance(content, list) and any(
                isinstance(p, dict) and not isinstance(p.get("text"), str) for p in content
            ):
                raise _fail(
                    ex, target, f"message {i + 1} has a non-text part; {target} holds text only"
                )


def _string_arguments(msgs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Tool-call arguments given as objects, JSON-encoded: OpenAI's chat format wants strings."""
    out = []
    for m in msgs:
        calls = m.get("tool_calls") if isinstance(m, dict) else None
        if isinstance(calls, list) and any(
            isinstance(c, dict) and isinstance((c.get("function") or {}).get("arguments"), dict)
            for c in calls
        ):
            fixed = []
            for c in calls:
                fn = dict(c["function"])
                if isinstance(fn.get("arguments"), dict):
                    fn["arguments"] = json.dumps(fn["arguments"], ensure_ascii=False)
                fixed.append({**c, "function": fn})
            m = {**m, "tool_calls": fixed}
        out.append(m)
    return out


def _messages(ex: Example, target: str) -> dict[str, Any]:
    if ex.kind == "text":
        raise _fail(
            ex, target, "plain text has no turns (expected chat, completion or preference data)"
        )
    if ex.kind == "preference":
        raise _fail(
            ex,
            target,
            "preference pairs need a preference target (openai, together, fireworks, trl, preference, sharegpt)",
        )
    out: dict[str, Any] = {"messages": ex.messages}
    if ex.tools:
        out["tools"] = ex.tools
    if ex.images:
        out["images"] = ex.images
    if ex.kind == "kto":
        out["label"] = ex.label
    return out


def _dpo_openai(ex: Example, target: str) -> dict[str, Any]:
    if ex.kind != "preference":
        body = _messages(ex, target)
        return {**body, "messages": _string_arguments(body["messages"])}
    inp: dict[str, Any] = {"messages": _string_arguments(ex.messages)}
    if ex.tools:
        inp["tools"] = ex.tools
    return {
        "input": inp,
        "preferred_output": _string_arguments(ex.chosen),
        "non_preferred_output": _string_arguments(ex.rejected),
    }


def _completion(ex: Example) -> dict[str, Any]:
    return {"prompt": ex.messages[0]["content"], "completion": ex.messages[1]["content"]}


def _together(ex: Example, target: str) -> dict[str, Any]:
    if ex.kind == "text":
        return {"text": ex.text}
    if ex.kind == "completion":
        return _completion(ex)
    return _dpo_openai(ex, target)


def _trl(ex: Example, target: str) -> dict[str, Any]:
    if ex.kind == "text":
        return {"text": ex.text}
    if ex.kind == "prompt":  # TRL's prompt-only type; the columns go to the rewards by name
        return {**ex.columns, "prompt": ex.text if ex.text is not None else ex.messages}
    if ex.kind == "completion":
        return _completion(ex)
    if ex.kind == "preference":
        return {"prompt": ex.messages, "chosen": ex.chosen, "rejected": ex.rejected}
    if ex.kind == "kto":  # TRL's unpaired form: the last answer is the labelled completion
        return {"prompt": ex.messages[:-1], "completion": ex.messages[-1:], "label": ex.label}
    return _messages(ex, target)


def _prompt_completion(ex: Example, target: str) -> dict[str, Any]:
    """Flatten a conversation: everything before the last assistant turn is the prompt."""
    if ex.kind == "completion":
        return _completion(ex)
    if ex.kind != "chat":
        raise _fail(ex, target, "only chat or completion examples flatten to prompt/completion")
    last = max((i for i, m in enumerate(ex.messages) if m.get("role") == "assistant"), default=None)
    if last is None:
        raise _fail(ex, target, "no assistant turn")
    if any(m.get("tool_calls") or m.get("role") == "tool" for m in ex.messages):
        raise _fail(ex, target, "tool calls do not flatten to prompt/completion")
    if ex.tools:
        raise _fail(ex, target, "its tool definitions have no place in prompt/completion")
    prompt = "\n\n".join(
        f"{m['role']}: {content_text(m.get('content'))}" if i else content_text(m.get("content"))
        for i, m in enumerate(ex.messages[:last])
    )
    return {"prompt": prompt, "completion": content_text(ex.messages[last].get("content"))}


def _sharegpt(ex: Example, target: str) -> dict[str, Any]:
    """LLaMA-Factory's ShareGPT: tools as a JSON string, parallel calls as a list, ids kept,
    preference pairs in its ranking form, KTO with `label`."""

    def why(reason: str) -> ConversionError:
        return _fail(ex, target, reason)

    if ex.kind == "text":
        raise why("plain text has no turns (expected chat, completion or preference data)")
    msgs = list(ex.messages)
    system = None
    if msgs and isinstance(msgs[0], dict) and msgs[0].get("role") == "system":
        system = msgs.pop(0).get("content")
    out: dict[str, Any] = {"conversations": sharegpt.from_messages(msgs, why)}
    if system is not None:
        out["system"] = system
    if ex.kind == "preference":
        for side, answer in (("chosen", ex.chosen), ("rejected", ex.rejected)):
            turns = sharegpt.from_messages(answer, why)
            out[side] = turns[0] if len(turns) == 1 else turns
    if ex.tools:
        out["tools"] = sharegpt.tools_string(ex.tools, why)
    if ex.images:
        out["images"] = ex.images
    if ex.kind == "kto":
        out["label"] = ex.label
    return out


def _alpaca(ex: Example, target: str) -> dict[str, Any]:
    msgs = _messages(ex, target)["messages"]
    if ex.kind == "kto":
        raise _fail(ex, target, "alpaca has no label (expected --to trl, messages or sharegpt)")
    if ex.tools or any(m.get("tool_calls") or m.get("role") == "tool" for m in msgs):
        raise _fail(ex, target, "alpaca has no tool calls or tool results (expected --to sharegpt)")
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
    if ex.images:
        out["images"] = ex.images
    return out


def _text(ex: Example, target: str) -> dict[str, Any]:
    if ex.kind != "text":
        raise _fail(ex, target, "only plain-text examples are written as text")
    return {"text": ex.text}


def _bedrock(ex: Example, target: str) -> dict[str, Any]:
    """Bedrock text models (Llama) take prompt/completion records."""
    return _prompt_completion(ex, target)


def _bedrock_conversation(ex: Example, target: str) -> dict[str, Any]:
    """Bedrock conversational schema (Nova and other converse models): text turns only here."""
    msgs = _messages(ex, target)["messages"]
    if ex.tools or any(m.get("tool_calls") or m.get("role") == "tool" for m in msgs):
        raise _fail(
            ex,
            target,
            "bedrock-conversation-2024 records hold text turns; tool calls and tool results "
            "would be lost (expected examples without tools)",
        )
    system = [{"text": m["content"]} for m in msgs if m.get("role") == "system"]
    turns = [
        {"role": m["role"], "content": [{"text": content_text(m.get("content"))}]}
        for m in msgs
        if m.get("role") in ("user", "assistant")
    ]
    return {"schemaVersion": "bedrock-conversation-2024", "system": system, "messages": turns}


def _mlx(ex: Example, target: str) -> dict[str, Any]:
    if ex.images:
        raise _fail(ex, target, "mlx-lm trains text only (expected examples without images)")
    return _trl(ex, target)


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
    "mlx": _mlx,
}
TARGETS = tuple(sorted(WRITERS))


def write_one(ex: Example, target: str) -> dict[str, Any]:
    """One example as `target` writes it, or ConversionError naming its line."""
    _guard(ex, target)
    return WRITERS[target](ex, target)


def records(examples: Iterable[Example], target: str) -> Iterable[dict[str, Any]]:
    for ex in examples:
        yield write_one(ex, target)


def write_jsonl(path: Path, rows: Iterable[dict[str, Any]]) -> int:
    """Write rows to `path` through a temporary file renamed on success."""
    path = Path(path)
    if path.is_dir():
        raise ConversionError(f"{path} is a folder (expected a file name for the output)")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    except OSError as exc:
        raise ConversionError(f"cannot write {path}: {exc.strerror or exc}") from None
    count = 0
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            for row in rows:
                fh.write(json.dumps(row, ensure_ascii=False) + "\n")
                count += 1
        os.replace(tmp, path)
    except (TypeError, ValueError) as exc:  # a value JSON has no form for (bytes from Parquet)
        Path(tmp).unlink(missing_ok=True)
        raise ConversionError(f"record {count + 1} cannot be written as JSON: {exc}") from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return count


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
        if Path(out).is_file():
            raise ConversionError(
                f"mlx writes a folder (train.jsonl, valid.jsonl); {out} is a file"
            )
        written = [Path(out) / "train.jsonl"]
        write_jsonl(written[0], list(records(examples, target)))
        if valid:
            written.append(Path(out) / "valid.jsonl")
            write_jsonl(written[1], list(records(valid, target)))
        return written
    rows = list(records(examples, target))  # convert everything before writing anything
    write_jsonl(Path(out), rows)
    return [Path(out)]
