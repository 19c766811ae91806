"""The target types `cast` and `add_column` know: how a column of one is described in a
table schema, and how a wire value becomes one.

A table schema names types in the *source engine's* vocabulary (sinks map
them, see cdc/postgres/target_types.py), so a cast column gets the source engine's name:

| to          | PostgreSQL source           | MySQL source   | wire value                    |
|-------------|-----------------------------|----------------|-------------------------------|
| text        | text                        | longtext       | string                        |
| integer     | integer                     | int            | number (32-bit)               |
| bigint      | bigint                      | bigint         | number (64-bit)               |
| numeric     | numeric                     | decimal(65,30) | string "12.50"                |
| double      | double precision            | double         | number; "NaN", "Infinity"     |
| boolean     | boolean                     | tinyint        | true/false (MySQL: 1/0)       |
| date        | date                        | date           | "2024-05-01"                  |
| timestamp   | timestamp without time zone | datetime(6)    | "2024-05-01T12:00:00.000000"  |
| timestamptz | timestamp with time zone    | timestamp(6)   | "2024-05-01T10:00:00.000000Z" |
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

import orjson

from cdc.schemas import Column
from cdc.values import encode_datetime, encode_decimal
from transforms.base import TransformError

TYPES = (
    "text",
    "integer",
    "bigint",
    "numeric",
    "double",
    "boolean",
    "date",
    "timestamp",
    "timestamptz",
)
_POSTGRES = {
    "double": "double precision",
    "timestamp": "timestamp without time zone",
    "timestamptz": "timestamp with time zone",
}
_MYSQL = {
    "text": "longtext",
    "integer": "int",
    # the widest: a bare DECIMAL is DECIMAL(10,0) on MySQL, which would drop the fraction
    "numeric": "decimal(65,30)",
    "boolean": "tinyint",
    "timestamp": "datetime(6)",
    "timestamptz": "timestamp(6)",
}
_RANGES = {"integer": 2**31, "bigint": 2**63}
_TRUE = {"t", "true", "y", "yes", "on", "1"}
_FALSE = {"f", "false", "n", "no", "off", "0"}


def column(name: str, to: str, connector: str, nullable: bool = True) -> Column:
    """A schema column of type `to`, named as the `connector`'s engine names it. `extra` is
    empty: the source's details (type oid, charset) described the old type."""
    names = _MYSQL if connector == "mysql" else _POSTGRES
    return Column(name, names.get(to, to), nullable)


def convert(value: Any, to: str, connector: str) -> Any:
    """The wire value of `value` as type `to`; `TransformError` when it has no such form."""
    if value is None:
        return None
    if isinstance(value, dict | list) and to != "text":
        raise TransformError(f"cannot cast {_kind(value)} to {to}")
    converted = _CONVERTERS[to](value)
    if to == "boolean" and connector == "mysql":
        return int(converted)
    return converted


def _kind(value: Any) -> str:
    names = {str: "text", bool: "a boolean", dict: "JSON", list: "an array"}
    return names.get(type(value), "a number")


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        return orjson.dumps(value).decode()
    return str(value)


def _decimal(value: Any, to: str) -> Decimal:
    if isinstance(value, bool):
        return Decimal(int(value))
    try:
        return Decimal(value.strip() if isinstance(value, str) else str(value))
    except InvalidOperation:
        raise TransformError(f"cannot cast {_kind(value)} that is not a number to {to}") from None


def _integer(to: str) -> Callable[[Any], int]:
    def convert(value: Any) -> int:
        if isinstance(value, int):
            number = int(value)
        else:
            exact = _decimal(value, to)
            if not exact.is_finite() or exact != exact.to_integral_value():
                raise TransformError(f"cannot cast a fractional or non-finite number to {to}")
            number = int(exact)
        if not -_RANGES[to] <= number < _RANGES[to]:
            raise TransformError(f"number out of range for {to}")
        return number

    return convert


def _numeric(value: Any) -> str:
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    return encode_decimal(_decimal(value, "numeric"))


def _double(value: Any) -> float | str:
    if isinstance(value, bool):
        raise TransformError("cannot cast a boolean to double")
    try:
        number = float(value.strip() if isinstance(value, str) else value)
    except ValueError:
        raise TransformError("cannot cast text that is not a number to double") from None
    if math.isfinite(number):
        return number
    # the wire form of non-finite floats (see cdc.values)
    return "NaN" if math.isnan(number) else ("Infinity" if number > 0 else "-Infinity")


def _boolean(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return value != 0
    if isinstance(value, str):
        text = value.strip().lower()
        if text in _TRUE or text in _FALSE:
            return text in _TRUE
    raise TransformError(f"cannot cast {_kind(value)} to boolean (true/false, t/f, yes/no, 1/0)")


def _datetime(value: Any, to: str) -> datetime:
    if not isinstance(value, str):
        raise TransformError(f"cannot cast {_kind(value)} to {to}: an ISO-8601 string is needed")
    try:
        # 3.11's fromisoformat reads dates, a "Z" suffix and offsets
        return datetime.fromisoformat(value.strip())
    except ValueError:
        raise TransformError(f"cannot cast text that is not ISO-8601 to {to}") from None


def _date(value: Any) -> str:
    parsed = _datetime(value, "date")
    if parsed.tzinfo is not None:
        parsed = parsed.astimezone(UTC)
    return date.isoformat(parsed.date())


def _timestamp(value: Any) -> str:
    parsed = _datetime(value, "timestamp")
    if parsed.tzinfo is not None:
        # as PostgreSQL does for a session in UTC (the sink's): the UTC wall time
        parsed = parsed.astimezone(UTC).replace(tzinfo=None)
    return encode_datetime(parsed)


def _timestamptz(value: Any) -> str:
    parsed = _datetime(value, "timestamptz")
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)  # a wall time without zone is taken as UTC
    return encode_datetime(parsed)


_CONVERTERS: dict[str, Callable[[Any], Any]] = {
    "text": _text,
    "integer": _integer("integer"),
    "bigint": _integer("bigint"),
    "numeric": _numeric,
    "double": _double,
    "boolean": _boolean,
    "date": _date,
    "timestamp": _timestamp,
    "timestamptz": _timestamptz,
}
