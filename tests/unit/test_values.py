"""The wire encoding of column values (the README's table)."""

from __future__ import annotations

import ipaddress
import uuid
from datetime import UTC, date, datetime, time, timedelta, timezone
from decimal import Decimal

import orjson
import pytest

from cdc import values


def wire(value: object) -> object:
    return orjson.loads(values.dumps({"v": value}))["v"]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (Decimal("1.50"), "1.50"),
        (Decimal("1E+3"), "1000"),
        (Decimal("0E-30"), "0.000000000000000000000000000000"),
        (
            Decimal("-12345678901234567890123456789012345.123456789012345678901234567890"),
            "-12345678901234567890123456789012345.123456789012345678901234567890",
        ),
        (Decimal("NaN"), "NaN"),
        (Decimal("Infinity"), "Infinity"),
        (Decimal("-Infinity"), "-Infinity"),
        (datetime(2024, 5, 1, 12, 0), "2024-05-01T12:00:00.000000"),
        (datetime(2024, 5, 1, 12, 0, 0, 5), "2024-05-01T12:00:00.000005"),
        (
            datetime(2024, 5, 1, 12, 0, tzinfo=timezone(timedelta(hours=2))),
            "2024-05-01T10:00:00.000000Z",
        ),
        (datetime(2024, 5, 1, 12, 0, tzinfo=UTC), "2024-05-01T12:00:00.000000Z"),
        (date(2024, 5, 1), "2024-05-01"),
        (time(23, 59, 59, 999999), "23:59:59.999999"),
        (time(1, 2, tzinfo=timezone(timedelta(hours=2))), "01:02:00.000000+02:00"),
        (b"\x00\xff", "AP8="),
        (bytearray(b"ab"), "YWI="),
        (memoryview(b"ab"), "YWI="),
        ({"b", "a"}, ["a", "b"]),
        (uuid.UUID(int=1), "00000000-0000-0000-0000-000000000001"),
        (ipaddress.ip_address("10.0.0.1"), "10.0.0.1"),
        (ipaddress.ip_network("10.0.0.0/8"), "10.0.0.0/8"),
        ({"nested": [1, "x", None]}, {"nested": [1, "x", None]}),
        (18446744073709551615, 18446744073709551615),
        (-9223372036854775808, -9223372036854775808),
    ],
)
def test_encoding_table(value: object, expected: object) -> None:
    assert wire(value) == expected


@pytest.mark.parametrize(
    ("delta", "text"),
    [
        (timedelta(0), "PT0.000000S"),
        # MySQL's TIME range, in hours as MySQL shows it (not 34 days 22 hours)
        (timedelta(hours=838, minutes=59, seconds=59), "PT838H59M59.000000S"),
        (-timedelta(hours=838, minutes=59, seconds=59), "-PT838H59M59.000000S"),
        (timedelta(hours=100, seconds=1), "PT100H1.000000S"),
        (timedelta(days=1, microseconds=1), "PT24H0.000001S"),
        (-timedelta(seconds=1), "-PT1.000000S"),
    ],
)
def test_durations_round_trip(delta: timedelta, text: str) -> None:
    assert values.encode_timedelta(delta) == text
    assert values.decode_timedelta(text) == delta


def test_bad_duration_is_named() -> None:
    with pytest.raises(ValueError, match="P1Y"):
        values.decode_timedelta("P1Y")


def test_unknown_type_is_an_error_not_a_guess() -> None:
    with pytest.raises(TypeError, match="object"):
        values.dumps({"v": object()})
