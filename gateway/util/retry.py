"""Retrying what is safe to retry, and telling apart what is not.

The official SDKs retry every request, POSTs included, on 408/409/429/5xx and timeouts. tunegate
builds its clients with `max_retries=0` and retries here instead: idempotent calls (retrieve,
list, events, downloads) with tenacity, honouring `Retry-After`, within a bounded total time;
creates never (see `gateway.facade.jobs`). Errors are read by duck typing, so this imports no SDK.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from email.utils import parsedate_to_datetime
from typing import Any, TypeVar

T = TypeVar("T")
_RETRY_STATUSES = frozenset({408, 409, 425, 429, 500, 502, 503, 504})
_MAX_WAIT_S = 60.0


def budget_s() -> float:
    """Total seconds one idempotent call may spend retrying (`TUNEGATE_RETRY_BUDGET_S`)."""
    return float(os.environ.get("TUNEGATE_RETRY_BUDGET_S", "300"))


def http_timeout_s() -> float:
    """Per-request timeout for provider clients (`TUNEGATE_HTTP_TIMEOUT_S`)."""
    return float(os.environ.get("TUNEGATE_HTTP_TIMEOUT_S", "60"))


def status_of(exc: BaseException) -> int | None:
    code = getattr(exc, "status_code", None)
    if code is None:
        response = getattr(exc, "response", None)
        if isinstance(response, dict):  # botocore's ClientError
            code = (response.get("ResponseMetadata") or {}).get("HTTPStatusCode")
        else:
            code = getattr(response, "status_code", None)
    return code if isinstance(code, int) else None


def _is_transport(exc: BaseException) -> bool:
    """Timeouts and dropped connections, from any SDK (their classes derive from these names)."""
    names = {cls.__name__ for cls in type(exc).__mro__}
    transport = {
        "APIConnectionError",
        "APITimeoutError",
        "TimeoutException",
        "TransportError",
        "NetworkError",
        "RemoteProtocolError",
        "ConnectionError",
        "EndpointConnectionError",
        "ReadTimeoutError",
        "ConnectTimeoutError",
        "HTTPClientError",  # botocore: ConnectionClosedError and friends
    }
    return bool(names & transport) or isinstance(exc, (TimeoutError, ConnectionError))


def retryable(exc: BaseException) -> bool:
    """True for rate limits, server errors, timeouts and dropped connections."""
    code = status_of(exc)
    if code is not None:
        return code in _RETRY_STATUSES or code >= 500
    return _is_transport(exc)


def retry_after_s(exc: BaseException) -> float | None:
    """The server's `retry-after-ms` / `retry-after` (seconds or HTTP date), if any."""
    response = getattr(exc, "response", None)
    if isinstance(response, dict):  # botocore: lower-cased headers in the metadata
        headers = (response.get("ResponseMetadata") or {}).get("HTTPHeaders")
    else:
        headers = getattr(response, "headers", None)
    if not headers:
        return None
    if (ms := headers.get("retry-after-ms")) is not None:
        try:
            return max(0.0, float(ms) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if value is None:
        return None
    if re.fullmatch(r"\s*\d+(\.\d+)?\s*", value):
        return max(0.0, float(value))
    try:
        from datetime import datetime, timezone

        return max(0.0, (parsedate_to_datetime(value) - datetime.now(timezone.utc)).total_seconds())
    except (TypeError, ValueError):
        return None


def backoff_s(attempt: int, exc: BaseException | None = None) -> float:
    """Seconds to wait before attempt `attempt + 1`: the server's word (up to a minute), else
    exponential from 0.25 s up to `TUNEGATE_RETRY_MAX_WAIT_S` (8 s)."""
    hinted = retry_after_s(exc) if exc is not None else None
    if hinted is not None:
        return min(hinted, _MAX_WAIT_S)
    cap = float(os.environ.get("TUNEGATE_RETRY_MAX_WAIT_S", "8"))
    return min(0.25 * 2 ** (attempt - 1), cap)


def idempotent(fn: Callable[[], T], *, what: str = "request") -> T:
    """Call `fn`, retrying retryable failures within `budget_s()`; re-raise the last one."""
    import tenacity

    def _wait(state: tenacity.RetryCallState) -> float:
        outcome = state.outcome
        exc = outcome.exception() if outcome is not None else None
        return backoff_s(state.attempt_number, exc)

    retrying = tenacity.Retrying(
        retry=tenacity.retry_if_exception(retryable),
        wait=_wait,
        stop=tenacity.stop_after_delay(budget_s()),
        reraise=True,
    )
    return retrying(fn)


def poll_until(
    what: str,
    fetch: Callable[[], T],
    verdict: Callable[[T], bool | str],
    *,
    wait_s: float,
    cap_s: float = 15.0,
) -> T:
    """Poll `fetch()` (retried as idempotent) until `verdict(obj)` is True; a string verdict
    is the failure's reason. Delays double from 0.2 s up to `cap_s`; after `wait_s` (or
    `TUNEGATE_READY_WAIT_S`, when set) the wait is an error. One loop for every "until
    ready": endpoints, adapter loads, model imports."""
    import time

    from gateway.errors import ProviderError

    limit = float(os.environ.get("TUNEGATE_READY_WAIT_S", wait_s))
    deadline, delay = time.monotonic() + limit, 0.2
    while True:
        obj = idempotent(fetch, what=what)
        answer = verdict(obj)
        if answer is True:
            return obj
        if isinstance(answer, str):
            raise ProviderError(f"{what} failed: {answer}")
        if time.monotonic() > deadline:
            raise ProviderError(f"{what} is not ready after {limit:.0f} s")
        time.sleep(delay)
        delay = min(delay * 2, cap_s)


def describe(exc: BaseException) -> str:
    """One line about a provider failure, with no request headers (so no key) in it."""
    code = status_of(exc)
    body: Any = getattr(exc, "body", None)
    message = None
    if isinstance(body, dict):
        err = body.get("error", body)
        message = err.get("message") if isinstance(err, dict) else err
    message = message or getattr(exc, "message", None) or str(exc) or type(exc).__name__
    prefix = f"HTTP {code}: " if code else ""
    return redact(f"{prefix}{message}")


def redact(text: str) -> str:
    """Replace the value of every provider key in the environment with '***'."""
    from gateway.util.secrets import secret_values

    for value in secret_values():
        text = text.replace(value, "***")
    return text
