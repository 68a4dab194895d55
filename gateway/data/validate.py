"""Validation: every finding is `file:line: what is wrong (expected ...)`, an error or a warning.

Errors make `tunegate data check` exit 1 (a provider would reject the file, or training would
silently learn the wrong thing); warnings do not.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from gateway.data.formats import Example, LoadedFile, content_text

ROLES = {"system", "user", "assistant", "tool"}

# Special tokens of each chat-template family: appearing inside training text they corrupt the
# rendered conversation (sources: each family's tokenizer_config.json).
SPECIAL_TOKENS: dict[str, tuple[str, ...]] = {
    "chatml": ("<|im_start|>", "<|im_end|>", "<|endoftext|>"),
    "llama3": (
        "<|begin_of_text|>",
        "<|start_header_id|>",
        "<|end_header_id|>",
        "<|eot_id|>",
        "<|end_of_text|>",
    ),
    "llama2": ("[INST]", "[/INST]", "<<SYS>>", "<</SYS>>"),
    "mistral": ("[INST]", "[/INST]"),
    "gemma": ("<start_of_turn>", "<end_of_turn>"),
    "harmony": ("<|start|>", "<|end|>", "<|message|>", "<|channel|>", "<|return|>"),
    "fim": ("<|fim_prefix|>", "<|fim_suffix|>", "<|fim_middle|>", "<fim_prefix>", "<fim_suffix>"),
}


@dataclass(frozen=True)
class Finding:
    line: int
    severity: str  # "error" | "warning"
    message: str

    def format(self, path: str) -> str:
        return f"{path}:{self.line}: {self.severity}: {self.message}"

    def to_json(self) -> dict[str, Any]:
        return {"line": self.line, "severity": self.severity, "message": self.message}


def _err(line: int, msg: str) -> Finding:
    return Finding(line, "error", msg)


def _warn(line: int, msg: str) -> Finding:
    return Finding(line, "warning", msg)


def _check_tool_calls(line: int, where: str, calls: Any) -> list[Finding]:
    if not isinstance(calls, list) or not calls:
        return [
            _err(
                line,
                f"{where}: tool_calls must be a non-empty list (expected [{{id, type: function, function: {{name, arguments}}}}])",
            )
        ]
    out = []
    for i, call in enumerate(calls):
        fn = call.get("function") if isinstance(call, dict) else None
        if not isinstance(fn, dict) or not isinstance(fn.get("name"), str) or not fn["name"]:
            out.append(
                _err(
                    line,
                    f"{where}: tool_calls[{i}] has no function name (expected function.name as a string)",
                )
            )
            continue
        args = fn.get("arguments")
        if isinstance(args, str):
            try:
                json.loads(args)
            except ValueError:
                out.append(
                    _err(
                        line,
                        f"{where}: tool_calls[{i}].function.arguments is not valid JSON (expected a JSON object encoded as a string)",
                    )
                )
        elif not isinstance(args, dict):
            out.append(
                _err(
                    line,
                    f"{where}: tool_calls[{i}].function.arguments missing (expected a JSON string)",
                )
            )
    return out


def _check_tools(line: int, tools: Any) -> list[Finding]:
    if tools is None:
        return []
    if not isinstance(tools, list):
        return [
            _err(
                line,
                "tools must be a list (expected [{type: function, function: {name, parameters}}])",
            )
        ]
    out = []
    for i, tool in enumerate(tools):
        fn = tool.get("function") if isinstance(tool, dict) else None
        if not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
            out.append(
                _err(
                    line,
                    f"tools[{i}] has no function name (expected {{type: function, function: {{name, parameters}}}})",
                )
            )
        elif "parameters" in fn and not isinstance(fn["parameters"], dict):
            out.append(_err(line, f"tools[{i}].function.parameters must be a JSON schema object"))
    return out


def _check_messages(ex: Example, text_only: bool | None) -> list[Finding]:
    line, out = ex.line, []
    msgs = ex.messages
    if not isinstance(msgs, list):
        return [_err(line, "messages must be a list (expected [{role, content}, ...])")]
    prev = None
    for i, msg in enumerate(msgs):
        where = f"message {i + 1}"
        if not isinstance(msg, dict):
            out.append(_err(line, f"{where} is not an object (expected {{role, content}})"))
            continue
        role = msg.get("role")
        if role is None:
            out.append(
                _err(line, f"{where} has no role (expected one of assistant, system, tool, user)")
            )
            continue
        if not isinstance(role, str) or role not in ROLES:
            out.append(
                _err(
                    line,
                    f"{where} has unknown role {role!r} (expected one of assistant, system, tool, user)",
                )
            )
            continue
        if role == "system" and i != 0:
            out.append(
                _err(
                    line,
                    f"{where}: system message not first (expected the system prompt as message 1)",
                )
            )
        content = msg.get("content")
        if role == "assistant" and msg.get("tool_calls") is not None:
            out += _check_tool_calls(line, where, msg["tool_calls"])
        elif not content_text(content).strip() and not _has_image(content):
            out.append(_err(line, f"{where} ({role}) has empty content (expected text)"))
        if _has_image(content):
            msg_text = f"{where} has an image part"
            if text_only:
                out.append(
                    _err(
                        line, f"{msg_text}, but the base model is text-only (expected text content)"
                    )
                )
            elif text_only is None:
                out.append(_warn(line, f"{msg_text}; check that the base model takes images"))
        if "weight" in msg and msg["weight"] not in (0, 1):
            out.append(_err(line, f"{where}: weight {msg['weight']!r} (expected 0 or 1)"))
        if prev is not None and role != "system":
            if role == prev and role in ("user", "assistant"):
                out.append(
                    _err(
                        line,
                        f"{where}: two {role} turns in a row (expected user and assistant to alternate)",
                    )
                )
            if role == "tool" and prev not in ("assistant", "tool"):
                out.append(
                    _err(
                        line,
                        f"{where}: tool result not after an assistant tool call (expected assistant with tool_calls first)",
                    )
                )
        prev = role
    return out


def _has_image(content: Any) -> bool:
    return isinstance(content, list) and any(
        isinstance(p, dict) and str(p.get("type", "")).startswith(("image", "input_image"))
        for p in content
    )


def check_example(
    ex: Example, *, text_only: bool | None = None, template: str | None = None
) -> list[Finding]:
    """Every rule that looks at one example."""
    out: list[Finding] = []
    if ex.kind == "text":
        if not isinstance(ex.text, str) or not ex.text.strip():
            out.append(_err(ex.line, "empty text (expected a non-empty `text` string)"))
    elif ex.kind == "preference":
        out += (
            _check_messages(ex, text_only)
            if ex.messages
            else [
                _err(
                    ex.line,
                    "preference pair without a prompt (expected `prompt` or `input.messages`)",
                )
            ]
        )
        for side, msgs in (("chosen", ex.chosen), ("rejected", ex.rejected)):
            if not msgs or not any(
                content_text(m.get("content")).strip() for m in msgs if isinstance(m, dict)
            ):
                out.append(
                    _err(ex.line, f"empty {side} answer (expected a non-empty assistant reply)")
                )
        if ex.chosen and ex.chosen == ex.rejected:
            out.append(
                _warn(ex.line, "chosen and rejected are identical: the pair teaches nothing")
            )
    else:
        out += _check_messages(ex, text_only)
        roles = [m.get("role") for m in ex.messages if isinstance(m, dict)]
        if "assistant" not in roles:
            out.append(
                _err(
                    ex.line,
                    "no assistant turn to learn from (expected at least one assistant message)",
                )
            )
        elif roles and roles[-1] == "user":
            out.append(
                _warn(ex.line, "conversation ends on a user turn: that turn is never trained on")
            )
        out += _check_tools(ex.line, ex.tools)
    out += _special_tokens(ex, template)
    return out


def _special_tokens(ex: Example, template: str | None) -> list[Finding]:
    text = ex.all_text()
    if "<" not in text and "[" not in text:
        return []
    families = [template, "fim"] if template else list(SPECIAL_TOKENS)
    found = sorted(
        {
            tok
            for fam in families
            if fam in SPECIAL_TOKENS
            for tok in SPECIAL_TOKENS[fam]
            if tok in text
        }
    )
    if not found:
        return []
    msg = f"special token {', '.join(found)} inside the text (expected plain text: the chat template adds these)"
    return [_err(ex.line, msg) if template else _warn(ex.line, msg)]


def check_file(
    loaded: LoadedFile,
    *,
    text_only: bool | None = None,
    template: str | None = None,
    provider: str | None = None,
    file_bytes: int = 0,
) -> list[Finding]:
    """All findings for a file: unreadable lines, mixed formats, each example, provider rules."""
    out = [_err(r.line, r.error or "unreadable") for r in loaded.read_errors]
    out += [_err(line, message) for line, message in loaded.shape_errors]
    for line in loaded.unknown_lines:
        out.append(
            _err(
                line,
                "unrecognised record (expected keys of one format: messages, conversations, "
                "instruction/output, prompt/completion, text, or prompt/chosen/rejected)",
            )
        )
    if len(loaded.formats_by_line) > 1:
        summary = "; ".join(
            f"{fmt}: lines {_lines(lines)}" for fmt, lines in sorted(loaded.formats_by_line.items())
        )
        first = min(min(v) for k, v in loaded.formats_by_line.items() if k != loaded.format)
        out.append(_err(first, f"file mixes formats ({summary}) (expected one format per file)"))
    for ex in loaded.examples:
        out += check_example(ex, text_only=text_only, template=template)
    if provider:
        out += _provider_rules(loaded, provider, file_bytes)
    return sorted(out, key=lambda f: (f.line, f.severity))


def _lines(lines: list[int], limit: int = 8) -> str:
    shown = ", ".join(map(str, lines[:limit]))
    return shown + (f" and {len(lines) - limit} more" if len(lines) > limit else "")


def _provider_rules(loaded: LoadedFile, provider: str, file_bytes: int) -> list[Finding]:
    """The provider's file rules, from the catalog (rules.yaml: data)."""
    from gateway.catalog import load_catalog

    rules = load_catalog().rules.data.get(provider)
    if rules is None:
        return []
    out, n = [], len(loaded.examples)
    if n < rules.min_examples:
        out.append(
            _err(1, f"{provider} needs at least {rules.min_examples} examples (file has {n})")
        )
    if rules.max_examples is not None and n > rules.max_examples:
        out.append(
            _err(1, f"{provider} accepts at most {rules.max_examples:,} examples (file has {n:,})")
        )
    if file_bytes > rules.max_bytes:
        out.append(
            _err(
                1,
                f"file is {file_bytes / 1e6:.0f} MB; {provider} accepts at most {rules.max_bytes / 1e6:.0f} MB",
            )
        )
    kinds, roles = sorted(rules.kinds), sorted(rules.roles)
    for ex in loaded.examples:
        if ex.kind not in kinds:
            out.append(
                _err(
                    ex.line,
                    f"{provider} does not take {ex.kind} examples (expected {', '.join(kinds)})",
                )
            )
            continue
        for i, msg in enumerate(ex.messages):
            role = msg.get("role") if isinstance(msg, dict) else None
            if isinstance(role, str) and role in ROLES and role not in roles:
                out.append(
                    _err(
                        ex.line,
                        f"message {i + 1}: {provider} does not accept role '{role}' (expected {', '.join(roles)})",
                    )
                )
    return out
