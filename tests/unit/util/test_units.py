import pytest

from gateway.util.units import Range, parse_count


def test_parse_count_accepts_suffixes_and_per_day():
    assert parse_count("2M") == 2_000_000
    assert parse_count("2M/day") == 2_000_000
    assert parse_count("500k") == 500_000
    assert parse_count("1.5B tokens/day") == 1_500_000_000
    assert parse_count(1234) == 1234


@pytest.mark.parametrize("bad", ["two million", "2X", "-5", "2M/week"])
def test_parse_count_rejects_garbage(bad):
    with pytest.raises(ValueError):
        parse_count(bad)


def test_range_arithmetic_keeps_order():
    rate = Range(100, 200, 400)
    hours = rate.inverse() * 3600
    assert hours.low == pytest.approx(9) and hours.high == pytest.approx(36)
    total = Range(1, 2, 3) + 10
    assert (total.low, total.likely, total.high) == (11, 12, 13)
    assert Range.of({"low": 1, "likely": 2, "high": 5}).high == 5
    assert Range.of(3).low == 3
