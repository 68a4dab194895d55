"""The job file's closed lists, defined once and cheap to import (no pydantic): the spec's
literals (`gateway.spec.job`), the scorers (`gateway.evaluate.scorers`) and the CLI's choices
all read them here, so `tunegate --help` lists them without loading the models."""

from __future__ import annotations

METHODS = ("lora", "qlora", "dora", "full")
TASKS = ("style", "sft", "code")  # presets for rank/alpha
SCORERS = ("exact", "regex", "json", "tool")  # task-eval scorers that need no model
