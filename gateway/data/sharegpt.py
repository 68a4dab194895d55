"""ShareGPT as LLaMA-Factory reads and writes it: `{from, value}` turns, `function_call` and
`observation` turns for tools, `tools` as a JSON string of bare function definitions, and the
`dataset_info.json` entry that renames columns and tags.

Tool calls keep their ids both ways: LLaMA-Factory pairs a call with its result by order and
ignores extra keys, so the ids ride in `tool_call_ids` / `tool_call_id` on the turns.
Source: LLaMA-Factory data/README.md and data/dataset_info.json (the sharegpt and ranking forms).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from gateway.errors import SpecError

ROLES = {
    "human": "user",
    "user": "user",
    "gpt": "assistant",
    "assistant": "assistant",
    "system": "system",
    "function_call": "assistant",
    "observation": "tool",
    "tool": "tool",
}
FROM = {"user": "human", "assistant": "gpt", "system": "system", "tool": "observation"}


def parse_tools(tools: Any) -> Any:
    """LLaMA-Factory's `tools` (a JSON string of bare functions) as OpenAI tools; anything that
    is not that is returned as given, for the validator to name."""
    if isinstance(tools, str):
        try:
            tools = json.loads(tools) if tools.strip() else None
        except ValueError:
            return tools
    if isinstance(tools, dict):
        tools = [tools]
    if not isinstance(tools, list):
        return tools
    return [
        {"type": "function", "function": t}
        if isinstance(t, dict) and "function" not in t and isinstance(t.get("name"), str)
        else t
        for t in tools
    ]


def _calls(value: Any, turn: int, ids: Any) -> list[dict[str, Any]]:
    """A function_call turn's value (one call or a list of parallel calls) as tool_calls."""
    try:
        parsed = json.loads(value) if isinstance(value, str) else value
    except ValueError:
        parsed = {"name": None, "arguments": value}
    calls = parsed if isinstance(parsed, list) else [parsed]
    out = []
    for k, call in enumerate(calls):
        if not isinstance(call, dict):
            call = {"name": None, "arguments": call}
        args = call.get("arguments", {})
        given = ids[k] if isinstance(ids, list) and k < len(ids) else None
        out.append(
            {
                "id": given if isinstance(given, str) else f"call_{turn}_{k}",
                "type": "function",
                "function": {
                    "name": call.get("name"),
                    "arguments": args if isinstance(args, str) else json.dumps(args),
                },
            }
        )
    return out


def to_messages(turns: Any, system: Any = None) -> list[dict[str, Any]]:
    """ShareGPT turns as OpenAI-style messages; tool results get the id of the call they answer
    (in order), so no pairing is lost."""
    msgs: list[dict[str, Any]] = []
    pending: list[str] = []
    for turn_no, turn in enumerate(turns if isinstance(turns, list) else []):
        if not isinstance(turn, dict):
            msgs.append({"role": None, "content": turn})
            continue
        speaker = turn.get("from")
        if speaker == "function_call":
            calls = _calls(turn.get("value"), turn_no, turn.get("tool_call_ids"))
            pending = [c["id"] for c in calls]
            msgs.append({"role": "assistant", "content": None, "tool_calls": calls})
            continue
        role = ROLES.get(speaker, speaker) if isinstance(speaker, str) else speaker
        msg: dict[str, Any] = {"role": role, "content": turn.get("value")}
        if role == "tool":
            given = turn.get("tool_call_id")
            call_id = given if isinstance(given, str) else (pending.pop(0) if pending else None)
            if call_id is not None:
                msg["tool_call_id"] = call_id
        msgs.append(msg)
    if isinstance(system, str) and system:
        msgs.insert(0, {"role": "system", "content": system})
    return msgs


def answer(value: Any) -> list[dict[str, Any]]:
    """A ranking answer (`chosen`/`rejected`: one turn, a list of turns, or a string)."""
    if isinstance(value, dict) and "from" in value:
        return to_messages([value])
    if isinstance(value, list) and all(isinstance(t, dict) and "from" in t for t in value):
        return to_messages(value)
    return [{"role": "assistant", "content": value}]


# --- writing -------------------------------------------------------------------------------


def from_messages(msgs: list[dict[str, Any]], why: Any) -> list[dict[str, Any]]:
    """Messages as ShareGPT turns; `why(reason)` builds the error for what ShareGPT cannot hold."""
    turns: list[dict[str, Any]] = []
    for i, m in enumerate(msgs):
        where = f"message {i + 1}"
        if "weight" in m:
            raise why(f"{where} has a weight; ShareGPT has no per-turn weights")
        calls = m.get("tool_calls")
        if calls:
            if isinstance(m.get("content"), str) and m["content"].strip():
                raise why(
                    f"{where} has text and tool calls; a function_call turn cannot carry the text"
                )
            body = [_call_body(c) for c in calls]
            turn = {
                "from": "function_call",
                "value": json.dumps(body[0] if len(body) == 1 else body),
            }
            turn["tool_call_ids"] = [c.get("id") for c in calls]
            turns.append(turn)
            continue
        if not isinstance(m.get("content"), str):
            raise why(f"{where} content is not plain text; ShareGPT values are strings")
        turn = {"from": FROM[m["role"]], "value": m["content"]}
        if m["role"] == "tool" and m.get("tool_call_id"):
            turn["tool_call_id"] = m["tool_call_id"]
        turns.append(turn)
    return turns


def _call_body(call: dict[str, Any]) -> dict[str, Any]:
    fn = call["function"]
    args = fn.get("arguments")
    try:
        decoded = json.loads(args) if isinstance(args, str) else args
    except ValueError:
        decoded = args
    return {"name": fn["name"], "arguments": decoded}


def tools_string(tools: list[Any], why: Any) -> str:
    """OpenAI tools as LLaMA-Factory's JSON string of bare function definitions."""
    bare = []
    for i, tool in enumerate(tools):
        if not (isinstance(tool, dict) and tool.get("type", "function") == "function"):
            raise why(f"tools[{i}] is not a function tool; LLaMA-Factory takes functions only")
        bare.append(tool.get("function", tool))
    return json.dumps(bare, ensure_ascii=False)


# --- dataset_info.json ---------------------------------------------------------------------

# LLaMA-Factory's column names (its defaults) for each column key a dataset_info entry may map.
_COLUMNS = {
    "prompt": "instruction",
    "query": "input",
    "response": "output",
    "history": "history",
    "messages": "conversations",
    "system": "system",
    "tools": "tools",
    "images": "images",
    "videos": "videos",
    "audios": "audios",
    "chosen": "chosen",
    "rejected": "rejected",
    "kto_tag": "kto_tag",
}
_TAGS = {
    "user_tag": "human",
    "assistant_tag": "gpt",
    "observation_tag": "observation",
    "function_tag": "function_call",
    "system_tag": "system",
}


def dataset_entry(info_path: Path, data_file: Path, name: str | None = None) -> dict[str, Any]:
    """The dataset_info.json entry for `data_file` (by `name`, else by its file_name)."""
    try:
        info = json.loads(Path(info_path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise SpecError(f"cannot read {info_path}: {exc}", where=str(info_path)) from None
    if not isinstance(info, dict):
        raise SpecError("dataset_info.json must be an object of entries", where=str(info_path))
    if name is not None:
        entry = info.get(name)
    else:
        entry = next(
            (
                e
                for e in info.values()
                if isinstance(e, dict) and e.get("file_name") == Path(data_file).name
            ),
            None,
        )
    if not isinstance(entry, dict):
        wanted = f"entry '{name}'" if name else f"an entry with file_name {Path(data_file).name}"
        raise SpecError(
            f"{info_path} has no {wanted} (expected one of {', '.join(sorted(info))})",
            where=str(info_path),
        )
    return entry


def entry_beside(data_file: Path) -> dict[str, Any] | None:
    """The entry of a dataset_info.json in the file's folder that names this file, if any."""
    info = Path(data_file).parent / "dataset_info.json"
    if not info.is_file():
        return None
    try:
        return dataset_entry(info, data_file)
    except SpecError:
        return None


class Mapping:
    """Renames one entry's columns and tags to LLaMA-Factory's defaults, record by record."""

    def __init__(self, entry: dict[str, Any]) -> None:
        self.formatting = entry.get("formatting", "alpaca")
        columns = entry.get("columns") or {}
        self.columns = {
            str(v): _COLUMNS[k] for k, v in columns.items() if k in _COLUMNS and v != _COLUMNS[k]
        }
        tags = entry.get("tags") or {}
        self.role_tag = tags.get("role_tag", "from")
        self.content_tag = tags.get("content_tag", "value")
        self.tags = {str(v): _TAGS[k] for k, v in tags.items() if k in _TAGS}

    def apply(self, record: Any) -> Any:
        if not isinstance(record, dict):
            return record
        out = {self.columns.get(k, k): v for k, v in record.items()}
        if self.formatting == "sharegpt":
            for key in ("conversations", "chosen", "rejected"):
                if key in out:
                    out[key] = self._turns(out[key])
        if "kto_tag" in out:
            out["label"] = out.pop("kto_tag")
        return out

    def _turns(self, value: Any) -> Any:
        if isinstance(value, dict):
            return self._turn(value)
        if isinstance(value, list):
            return [self._turn(t) for t in value]
        return value

    def _turn(self, turn: Any) -> Any:
        if not isinstance(turn, dict) or self.role_tag not in turn:
            return turn
        speaker = turn[self.role_tag]
        rest = {k: v for k, v in turn.items() if k not in (self.role_tag, self.content_tag)}
        named = self.tags.get(speaker, speaker) if isinstance(speaker, str) else speaker
        return {**rest, "from": named, "value": turn.get(self.content_tag)}
