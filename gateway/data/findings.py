"""A finding: `file:line: severity: what is wrong (expected ...)`. Errors make `tunegate data
check` exit 1 (a provider would reject the file, or training would silently learn the wrong
thing); warnings do not."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

ROLES = {"system", "user", "assistant", "tool"}


@dataclass(frozen=True)
class Finding:
    line: int
    severity: str  # "error" | "warning"
    message: str

    def format(self, path: str) -> str:
        return f"{path}:{self.line}: {self.severity}: {self.message}"

    def to_json(self) -> dict[str, Any]:
        return {"line": self.line, "severity": self.severity, "message": self.message}


def error(line: int, msg: str) -> Finding:
    return Finding(line, "error", msg)


def warning(line: int, msg: str) -> Finding:
    return Finding(line, "warning", msg)
