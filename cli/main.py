"""The `tunegate` command: a thin layer that parses, calls the SDK, and renders.

Heavy imports (rich, the SDK's planner) happen inside commands so `tunegate --help` is instant.
"""

from __future__ import annotations

import functools
import json
import os
import sys
from collections.abc import Callable
from typing import Any

import click

# pydantic looks for plugins through importlib.metadata on first use (~30 ms); the CLI uses none
os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")

from cli.catalog_cmds import hardware_cmd, models_cmd, prices_cmd
from cli.data_cmd import data_group
from cli.plan_cmd import plan_cmd


def handle_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Print tunegate's own errors as one readable message (no traceback) and exit non-zero."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from gateway.errors import TunegateError

        try:
            return fn(*args, **kwargs)
        except TunegateError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(exc.exit_code)
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            sys.exit(130)

    return wrapper


def emit_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, default=str))


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="tunegate")
def main() -> None:
    """tunegate: check data, price every backend (training and serving), route to the
    cheapest that fits, run, export and deploy.

    Start with `tunegate plan --base MODEL --examples N --avg-tokens T` or `tunegate plan job.yaml`.
    Every command takes --json for scripts. Docs: docs/getting-started.md.
    """


for command in (plan_cmd, data_group, models_cmd, hardware_cmd, prices_cmd):
    main.add_command(command)


if __name__ == "__main__":
    main()
