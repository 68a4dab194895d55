"""Small value types shared by estimates, offers and the CLI: ranges and token counts."""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

HOURS_PER_MONTH = 730.0  # the convention cloud price pages use
DAYS_PER_MONTH = HOURS_PER_MONTH / 24.0
GB = 1e9


@dataclass(frozen=True)
class Range:
    """An estimate as low / likely / high, so no number pretends to more precision than it has."""

    low: float
    likely: float
    high: float

    @classmethod
    def of(cls, value: Any) -> Range:
        """A Range from a number, a Range, or a mapping with low/likely/high."""
        if isinstance(value, Range):
            return value
        if isinstance(value, int | float):
            return cls(float(value), float(value), float(value))
        if isinstance(value, dict):
            likely = float(value["likely"])
            return cls(float(value.get("low", likely)), likely, float(value.get("high", likely)))
        raise TypeError(f"cannot make a Range from {value!r}")

    @classmethod
    def zero(cls) -> Range:
        return cls(0.0, 0.0, 0.0)

    def map(self, fn: Callable[[float], float]) -> Range:
        values = sorted((fn(self.low), fn(self.likely), fn(self.high)))
        return Range(values[0], values[1], values[2])

    def inverse(self) -> Range:
        """1/x, keeping low <= likely <= high (a high rate gives a low time)."""
        return Range(1.0 / self.high, 1.0 / self.likely, 1.0 / self.low)

    def __add__(self, other: Range | float) -> Range:
        o = Range.of(other)
        return Range(self.low + o.low, self.likely + o.likely, self.high + o.high)

    __radd__ = __add__

    def __mul__(self, other: Range | float) -> Range:
        o = Range.of(other)
        return Range(self.low * o.low, self.likely * o.likely, self.high * o.high)

    __rmul__ = __mul__

    def __truediv__(self, other: Range | float) -> Range:
        if isinstance(other, Range):
            return self * other.inverse()
        return Range(self.low / other, self.likely / other, self.high / other)

    def to_json(self, digits: int = 4) -> dict[str, float]:
        return {k: _round(v, digits) for k, v in self.as_dict().items()}

    def as_dict(self) -> dict[str, float]:
        return {"low": self.low, "likely": self.likely, "high": self.high}


def _round(value: float, digits: int) -> float:
    if value == 0 or math.isinf(value) or math.isnan(value):
        return value
    # significant digits, so $0.0031 and $31,000 both stay readable
    return round(value, max(0, digits - 1 - math.floor(math.log10(abs(value)))))


_COUNT = re.compile(r"^\s*([0-9]*\.?[0-9]+)\s*([kKmMbBgG]?)\s*(?:tokens?)?\s*(?:/\s*(day|d))?\s*$")
_SCALE = {"": 1, "k": 1e3, "m": 1e6, "b": 1e9, "g": 1e9}


def parse_count(text: str | int | float) -> int:
    """Parse '2M', '2M/day', '500k', '1.5B' or a plain number into an integer count."""
    if isinstance(text, int | float):
        if text < 0:
            raise ValueError("a count cannot be negative")
        return int(text)
    match = _COUNT.match(str(text))
    if not match:
        raise ValueError(f"'{text}' is not a count (expected e.g. 2M, 500k, 2M/day, 1500000)")
    return int(float(match.group(1)) * _SCALE[match.group(2).lower()])


def human_count(n: float) -> str:
    """1_500_000 -> '1.5M'."""
    for unit, scale in (("B", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(n) >= scale:
            return f"{n / scale:.3g}{unit}"
    return f"{n:.0f}"


def human_usd(x: float) -> str:
    if x == 0:
        return "$0"
    if abs(x) < 0.01:
        return "<$0.01"
    if abs(x) < 100:
        return f"${x:,.2f}"
    return f"${x:,.0f}"


def human_time(ts: float | None) -> str:
    """A timestamp in local time to the minute ('2026-12-03 19:05'); '-' for none."""
    import datetime as dt

    return dt.datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M") if ts else "-"


def human_hours(h: float) -> str:
    if h < 1:
        return f"{h * 60:.0f} min"
    if h < 48:
        return f"{h:.1f} h"
    return f"{h / 24:.1f} d"


def percentile(values: list[float], q: float) -> float | None:
    """The q-quantile of `values` by nearest rank (None for none): latencies in reports."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]
