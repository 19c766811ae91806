"""PostgreSQL text values straight to their wire form (cdc.postgres.types)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from cdc import values
from cdc.postgres import types


def _fallback(data: bytes) -> str:
    return "fallback:" + data.decode()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (b"2024-05-01 12:00:00.500007", datetime(2024, 5, 1, 12, 0, 0, 500007)),
        (b"2024-05-01 12:00:00.5", datetime(2024, 5, 1, 12, 0, 0, 500000)),
        (b"2024-05-01 12:00:00.12345", datetime(2024, 5, 1, 12, 0, 0, 123450)),
        (b"2024-05-01 12:00:00", datetime(2024, 5, 1, 12)),
        (b"0001-01-01 00:00:00", datetime(1, 1, 1)),
    ],
)
def test_timestamp_text_is_the_wire_form_of_its_datetime(text: bytes, expected: datetime) -> None:
    wire = types._timestamp(_fallback)(text)
    assert wire == values.encode_datetime(expected)
    aware = types._timestamptz(_fallback)(text + b"+00")
    assert aware == values.encode_datetime(expected.replace(tzinfo=UTC))


@pytest.mark.parametrize(
    "text",
    [b"infinity", b"-infinity", b"0044-03-15 00:00:00 BC", b"0044-03-15 00:00:00.123 BC",
     b"10000-01-01 00:00:00"],
)  # fmt: skip
def test_timestamps_python_cannot_hold_go_to_the_loader(text: bytes) -> None:
    assert types._timestamp(_fallback)(text) == "fallback:" + text.decode()


def test_timestamptz_outside_utc_goes_to_the_loader() -> None:
    assert types._timestamptz(_fallback)(b"2024-05-01 12:00:00+02") == (
        "fallback:2024-05-01 12:00:00+02"
    )
