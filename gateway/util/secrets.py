"""Provider keys: read from the environment, never printed, logged or stored.

`require` names the missing variable in its error; `secret_values` lets every output path
(journal, errors, `--json`) blank out a key that slipped into a message.
"""

from __future__ import annotations

import os

from gateway.errors import MissingKeyError

KEY_VARS = (
    "OPENAI_API_KEY",
    "TOGETHER_API_KEY",
    "FIREWORKS_API_KEY",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "HF_TOKEN",
    "WANDB_API_KEY",
)


def require(var: str, provider: str) -> str:
    value = os.environ.get(var, "").strip()
    if not value:
        raise MissingKeyError(
            f"{var} is not set; {provider} needs it to run jobs",
            fix=f"export {var}=... (tunegate reads it from the environment and never stores it)",
        )
    return value


def secret_values() -> list[str]:
    """The values of the key variables that are set (at least 8 characters, to avoid noise)."""
    return [v for var in KEY_VARS if len(v := os.environ.get(var, "")) >= 8]
