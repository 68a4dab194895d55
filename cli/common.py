"""What every command shares: tunegate errors as one message (no traceback) and JSON output."""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from typing import Any

import click


def handle_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Print tunegate's own errors as one readable message and exit with their code."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from gateway.errors import TunegateError

        try:
            return fn(*args, **kwargs)
        except TunegateError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(exc.exit_code)
        except ImportError as exc:  # an optional package: one line naming the extra
            from gateway.catalog.extras import from_import_error

            known = from_import_error(exc)
            if known is None:
                raise
            click.echo(f"error: {known}", err=True)
            sys.exit(known.exit_code)
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            sys.exit(130)

    return wrapper


def emit_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, default=str))


def parse_share(text: str, *, zero: bool = False) -> float:
    """`10%`, `10` (percent) or `0.1` -> 0.1 (a share of traffic or of a file); `zero` allows
    0 and refuses 100% (a held-out share)."""
    raw = text.strip()
    try:
        value = float(raw.rstrip("%"))
    except ValueError:
        raise click.BadParameter(f"{text!r}: expected a share such as 10%") from None
    share = value / 100 if raw.endswith("%") or value > 1 else value
    if zero and not 0 <= share < 1:
        raise click.BadParameter(f"{text!r}: a held-out share is at least 0% and under 100%")
    if not zero and not 0 < share <= 1:
        raise click.BadParameter(f"{text!r}: a share is above 0% and at most 100%")
    return share
