"""Waiting in tests for something another process does (a worker, a server, a browser)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def until(check: Callable[[], T], timeout: float = 120.0, every: float = 0.2) -> T | None:
    """Call `check` until it returns something truthy, and return that; None after `timeout`
    seconds (the caller asserts, with what it knows about why)."""
    deadline = time.monotonic() + timeout
    while True:
        got = check()
        if got:
            return got
        if time.monotonic() >= deadline:
            return None
        time.sleep(every)
