"""Validation: every finding is `file:line: what is wrong (expected ...)`, an error or a warning.

Errors make `tunegate data check` exit 1 (a provider would reject the file, or training would
silently learn the wrong thing); warnings do not.
"""

from __future__ import annotations

import json
from typing import Any

from gateway.data.findings import ROLES, Finding
from gateway.data.findings import error as _err
from gateway.data.findings import warning as _warn
from gateway.data.formats import Example, LoadedFile, content_text
from gateway.data.per_objective import grpo_prompts, kto_balance, objective_findings
from gateway.data.upload import provider_rules

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
        problem = _arguments_problem(fn.get("arguments"))
        if problem:
            out.append(_err(line, f"{where}: tool_calls[{i}].function.arguments {problem}"))
    return out


def _arguments_problem(args: Any) -> str | None:
    """Arguments are a JSON object encoded as a string (OpenAI's form) or an object (what HF
    chat templates take); anything else, a double-encoded string included, is wrong."""
    if isinstance(args, dict):
        return None
    if not isinstance(args, str):
        return f"is {type(args).__name__} (expected a JSON object encoded as a string)"
    try:
        decoded = json.loads(args)
    except (ValueError, RecursionError):
        return "is not valid JSON (expected a JSON object encoded as a string)"
    if isinstance(decoded, str):
        return "is encoded twice (a JSON string holding JSON; expected the object encoded once)"
    if not isinstance(decoded, dict):
        return f"encodes a {type(decoded).__name__} (expected a JSON object)"
    return None


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


def _content_problem(content: Any) -> str | None:
    """What is wrong with a message's content, said as what it is (not "empty")."""
    if isinstance(content, str):
        return None if content.strip() else "has empty content (expected text)"
    if content is None:
        return "has no content (expected text)"
    if isinstance(content, list):
        if not content:
            return "has an empty content list (expected text or content parts)"
        for k, part in enumerate(content):
            if not isinstance(part, dict):
                return f"content part {k + 1} is {type(part).__name__} (expected {{type, text}})"
            if _is_image(part):
                continue
            if not isinstance(part.get("text"), str):
                kind = part.get("type", "untyped")
                return f"content part {k + 1} ({kind}) has no text (expected {{type: text, text}})"
        if not content_text(content).strip() and not _has_image(content):
            return "has content parts with empty text (expected text)"
        return None
    return f"content is {type(content).__name__} (expected a string or a list of content parts)"


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
            prev = None
            continue
        role = msg.get("role")
        if role is None:
            out.append(
                _err(line, f"{where} has no role (expected one of assistant, system, tool, user)")
            )
            prev = None
            continue
        if not isinstance(role, str) or role not in ROLES:
            out.append(
                _err(
                    line,
                    f"{where} has unknown role {role!r} (expected one of assistant, system, tool, user)",
                )
            )
            prev = None
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
            if content not in (None, "") and _content_problem(content):
                out.append(_err(line, f"{where} ({role}) {_content_problem(content)}"))
        elif _content_problem(content):
            out.append(_err(line, f"{where} ({role}) {_content_problem(content)}"))
        if _has_image(content):
            out += _image_finding(line, f"{where} has an image part", text_only)
        weight = msg.get("weight", 0)
        if "weight" in msg and (type(weight) is not int or weight not in (0, 1)):
            out.append(_err(line, f"{where}: weight {weight!r} (expected the integer 0 or 1)"))
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


def _image_finding(line: int, what: str, text_only: bool | None) -> list[Finding]:
    if text_only:
        return [_err(line, f"{what}, but the base model is text-only (expected text content)")]
    if text_only is None:
        return [_warn(line, f"{what}; check that the base model takes images")]
    return []


def _is_image(part: dict[str, Any]) -> bool:
    return str(part.get("type", "")).startswith(("image", "input_image")) or "image_url" in part


def _has_image(content: Any) -> bool:
    return isinstance(content, list) and any(isinstance(p, dict) and _is_image(p) for p in content)


def _answer_problem(side: str, msgs: list[Any]) -> str | None:
    if not msgs:
        return f"empty {side} answer (expected a non-empty assistant reply)"
    for k, m in enumerate(msgs):
        if not isinstance(m, dict) or m.get("role") != "assistant":
            role = m.get("role") if isinstance(m, dict) else type(m).__name__
            return f"{side} message {k + 1} has role {role!r} (expected assistant)"
        if not m.get("tool_calls") and _content_problem(m.get("content")):
            return f"{side} answer {_content_problem(m.get('content'))}"
    return None


def check_example(
    ex: Example, *, text_only: bool | None = None, template: str | None = None
) -> list[Finding]:
    """Every rule that looks at one example."""
    out: list[Finding] = []
    if ex.kind == "text":
        if not isinstance(ex.text, str) or not ex.text.strip():
            out.append(_err(ex.line, "empty text (expected a non-empty `text` string)"))
    elif ex.kind == "preference":
        if ex.messages:
            out += _check_messages(ex, text_only)
        else:
            hint = (
                "expected `prompt`, `input.messages`, or conversations that share their first turns"
            )
            out.append(_err(ex.line, f"preference pair without a prompt ({hint})"))
        for side, msgs in (("chosen", ex.chosen), ("rejected", ex.rejected)):
            problem = _answer_problem(side, msgs)
            if problem:
                out.append(_err(ex.line, problem))
        if ex.chosen and ex.chosen == ex.rejected:
            out.append(
                _warn(ex.line, "chosen and rejected are identical: the pair teaches nothing")
            )
        out += _check_tools(ex.line, ex.tools)
    elif ex.kind == "prompt":
        out += _check_prompt(ex, text_only)
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
        if ex.kind == "kto":
            if not isinstance(ex.label, bool):
                out.append(_err(ex.line, f"KTO label {ex.label!r} (expected true or false)"))
            if roles and roles[-1] != "assistant":
                out.append(_err(ex.line, "KTO example must end with the labelled assistant answer"))
        out += _check_tools(ex.line, ex.tools)
    if ex.images:
        n = len(ex.images) if isinstance(ex.images, list) else 1
        out += _image_finding(ex.line, f"record has {n} image(s) in `images`", text_only)
    out += _special_tokens(ex, template)
    return out


def _check_prompt(ex: Example, text_only: bool | None) -> list[Finding]:
    """A prompt-only record (GRPO): a non-empty prompt that leaves the answer to the model."""
    if ex.text is not None:
        if not ex.text.strip():
            return [_err(ex.line, "empty prompt (expected a non-empty `prompt` string)")]
        return []
    out = _check_messages(ex, text_only)
    roles = [m.get("role") for m in ex.messages if isinstance(m, dict)]
    if roles and roles[-1] == "assistant":
        out.append(
            _err(
                ex.line,
                "prompt ends on an assistant turn (expected it to end on the user's turn: the "
                "model samples the answer; a reference answer goes in a column such as `answer`)",
            )
        )
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
    objective: str | None = None,
) -> list[Finding]:
    """All findings for a file: unreadable lines, mixed formats, each example, provider rules,
    and with `objective` the example kinds it trains on."""
    out = _read_findings(loaded)
    out += [_err(line, message) for line, message in loaded.shape_errors]
    out += [_err(line, message) for line, message in loaded.unknown_lines]
    out += [_warn(line, message) for line, message in loaded.conflicts]
    if len(loaded.formats_by_line) > 1:
        summary = "; ".join(
            f"{fmt}: lines {_lines(lines)}" for fmt, lines in sorted(loaded.formats_by_line.items())
        )
        first = min(min(v) for k, v in loaded.formats_by_line.items() if k != loaded.format)
        out.append(_err(first, f"file mixes formats ({summary}) (expected one format per file)"))
    for ex in loaded.examples:
        out += check_example(ex, text_only=text_only, template=template)
    out += kto_balance(loaded.examples) + grpo_prompts(loaded.examples)
    if not loaded.examples and not any(f.severity == "error" for f in out):
        out.append(_err(1, "no examples in the file (expected at least one record)"))
    if provider:
        out += provider_rules(loaded, provider, file_bytes)
    if objective:
        out += objective_findings(loaded.examples, objective)
    return sorted(out, key=lambda f: (f.line, f.severity))


def _read_findings(loaded: LoadedFile) -> list[Finding]:
    """Unreadable lines; lines of one encoding problem become one finding, not one per line."""
    encoding = [r for r in loaded.read_errors if r.code == "encoding"]
    out = [
        _err(r.line, r.error or "unreadable") for r in loaded.read_errors if r.code != "encoding"
    ]
    if encoding:
        lines = _lines([r.line for r in encoding])
        more = f" (on {len(encoding)} lines: {lines})" if len(encoding) > 1 else ""
        out.append(_err(encoding[0].line, f"{encoding[0].error}{more}"))
    return out


def _lines(lines: list[int], limit: int = 8) -> str:
    shown = ", ".join(map(str, lines[:limit]))
    return shown + (f" and {len(lines) - limit} more" if len(lines) > limit else "")
