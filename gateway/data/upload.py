"""A provider's file rules (rules.yaml `data`): what its examples may hold, and the file as it
would be uploaded (container, name, record format). When a file fails only because of its
shape, the finding says which `tunegate data convert` makes it pass.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gateway.data.findings import ROLES, Finding
from gateway.data.findings import error as _err
from gateway.data.formats import Example, LoadedFile
from gateway.errors import ConversionError


def _rules(provider: str) -> Any:
    from gateway.catalog import load_catalog

    return load_catalog().rules.data.get(provider)


def _fits_kind(kind: str, kinds: list[str]) -> bool:
    """Completion examples become chat when converted, so a chat-only provider takes them."""
    return kind in kinds or (kind == "completion" and "chat" in kinds)


def provider_rules(loaded: LoadedFile, provider: str, file_bytes: int) -> list[Finding]:
    """What the provider accepts in the examples themselves, whatever shape the file has:
    what tunegate checks before it converts and uploads for a job."""
    rules = _rules(provider)
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
        if not _fits_kind(ex.kind, kinds):
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
        want = rules.preference_answer_messages
        if ex.kind == "preference" and want is not None:
            for side, msgs in (("preferred", ex.chosen), ("non-preferred", ex.rejected)):
                if len(msgs) != want:
                    out.append(
                        _err(
                            ex.line,
                            f"{provider} takes exactly {want} {side} message(s) (this pair has {len(msgs)})",
                        )
                    )
    return out


def upload_findings(loaded: LoadedFile, provider: str) -> list[Finding]:
    """The file as it would be uploaded to `provider` unchanged: the container and name it
    reads, the record formats it reads as they are, and per-format rules."""
    rules = _rules(provider)
    if rules is None:
        return []
    path = loaded.path
    target = rules.convert_to
    head = f"as uploaded to {provider} this fails"
    blocked = _unconvertible(loaded, target)
    fix = (
        f"`tunegate data convert {path.name} --to {target} -o {path.stem}.{target}.jsonl` makes it valid"
        if blocked is None
        else f"`convert --to {target}` cannot fix line {blocked[0]}: {blocked[1]}"
    )
    out: list[Finding] = []
    kind = loaded.container
    if kind == "json-array":
        out.append(
            _err(
                1,
                f"{head}: the file is one JSON array; {provider} reads one JSON object per line; {fix}",
            )
        )
    elif kind not in rules.containers:
        out.append(
            _err(
                1,
                f"{head}: {provider} reads {', '.join(rules.containers)} files, not {kind}; {fix}",
            )
        )
    elif kind == "parquet":
        out += _parquet_columns(path, provider, rules.parquet_columns, head, fix)
    elif path.suffix.lower() != ".jsonl":
        out.append(
            _err(
                1,
                f"{head}: the file is named {path.name}; {provider} takes .jsonl files (rename it)",
            )
        )
    for fmt, lines in sorted(loaded.formats_by_line.items()):
        if fmt in rules.formats or (kind == "parquet" and rules.parquet_columns):
            continue
        shown = ", ".join(map(str, lines[:5])) + (
            f" and {len(lines) - 5} more" if len(lines) > 5 else ""
        )
        out.append(
            _err(
                lines[0],
                f"{head}: {len(lines)} {fmt} record(s) (lines {shown}); {provider} reads "
                f"{', '.join(rules.formats)} records; {fix}",
            )
        )
    for line, clash in loaded.conflicts:
        out.append(_err(line, f"{head}: {clash}; {fix}"))
    if rules.string_arguments:
        out += _object_arguments(loaded.examples, head, fix)
    return out


def _unconvertible(loaded: LoadedFile, target: str) -> tuple[int, str] | None:
    """The first example that `convert --to target` refuses, and why."""
    from gateway.data.convert import write_one

    for ex in loaded.examples:
        try:
            write_one(ex, target)
        except ConversionError as exc:
            return ex.line, exc.message.split(": ", 1)[-1]
        except (KeyError, TypeError, AttributeError, IndexError, ValueError):
            return ex.line, "the record is malformed (see its errors)"
    return None


def _object_arguments(examples: list[Example], head: str, fix: str) -> list[Finding]:
    out = []
    for ex in examples:
        for i, msg in enumerate([*ex.messages, *ex.chosen, *ex.rejected]):
            calls = msg.get("tool_calls") if isinstance(msg, dict) else None
            for k, call in enumerate(calls if isinstance(calls, list) else []):
                fn = call.get("function") if isinstance(call, dict) else None
                if isinstance(fn, dict) and isinstance(fn.get("arguments"), dict):
                    out.append(
                        _err(
                            ex.line,
                            f"{head}: message {i + 1} tool_calls[{k}].function.arguments is an "
                            f"object (expected a JSON-encoded string); {fix}",
                        )
                    )
    return out


def _parquet_columns(
    path: Path, provider: str, allowed: list[str], head: str, fix: str
) -> list[Finding]:
    if not allowed:
        return []
    try:
        import pyarrow.parquet as pq

        names = list(pq.read_schema(path).names)
    except Exception:  # unreadable Parquet is already a read error
        return []
    if "input_ids" not in names or any(n not in allowed for n in names):
        return [
            _err(
                1,
                f"{head}: {provider} takes only pre-tokenized Parquet (columns {', '.join(allowed)}; "
                f"this file has {', '.join(names[:6])}); {fix.replace('makes it valid', 'writes JSONL it takes')}",
            )
        ]
    return []
