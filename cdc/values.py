"""Lossless, engine-neutral encoding of column values for the wire.

The table (also in the README):

| Python value (from the source)      | JSON on the wire                                   |
|-------------------------------------|----------------------------------------------------|
| int, bool, str                      | number, true/false, string                         |
| float                               | number; NaN, +/-Infinity as strings (sources convert) |
| Decimal                        | plain-notation string, scale kept: "1.50"; "NaN", "-Infinity" |
| datetime without tz (timestamp)     | "2024-05-01T12:00:00.000000" (always microseconds)  |
| datetime with tz (timestamptz)      | "2024-05-01T10:00:00.000000Z" (converted to UTC)    |
| date                                | "2024-05-01"                                       |
| time / time with tz                 | "12:00:00.000000" / "12:00:00.000000+02:00"        |
| timedelta (MySQL TIME)              | ISO-8601 hours "PT100H3M4.000005S", sign first     |
| bytes (bytea, BLOB, BINARY, BIT)    | base64 string                                      |
| dict / list (json, jsonb, arrays)   | nested JSON / JSON array                           |
| UUID, IP addresses/networks         | string                                             |
| set (MySQL SET)                     | sorted JSON array of strings                       |

A value's source type travels in the `__schemas` topic, so a sink knows
that "2024-05-01" was a date and not a string.
"""

from __future__ import annotations

import base64
import ipaddress
import re
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

import orjson

# Datetimes go through `default` too: orjson drops zero microseconds and
# keeps offsets, and the wire format wants a fixed shape in UTC.
DUMPS_OPTIONS = orjson.OPT_PASSTHROUGH_DATETIME


def encode_decimal(value: Decimal) -> str:
    if value.is_finite():
        return format(value, "f")
    if value.is_nan():
        return "NaN"
    return "Infinity" if value > 0 else "-Infinity"


def encode_datetime(value: datetime) -> str:
    if value.tzinfo is None:
        return value.isoformat(timespec="microseconds")
    utc = value.astimezone(UTC).replace(tzinfo=None)
    return utc.isoformat(timespec="microseconds") + "Z"


def encode_timedelta(value: timedelta) -> str:
    """In hours, never days: a MySQL TIME (the one source of these) is
    hours, `100:00:01`, and a target interval then reads the same."""
    sign = "-" if value < timedelta(0) else ""
    value = abs(value)
    hours, rest = divmod(value.days * 86_400 + value.seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    out = f"{sign}PT"
    if hours:
        out += f"{hours}H"
    if minutes:
        out += f"{minutes}M"
    return out + f"{seconds}.{value.microseconds:06d}S"


_DURATION = re.compile(r"(-)?P(?:(\d+)D)?T(?:(\d+)H)?(?:(\d+)M)?(\d+)\.(\d{6})S")


def decode_timedelta(text: str) -> timedelta:
    """Inverse of `encode_timedelta` (sinks use it for interval and TIME columns)."""
    match = _DURATION.fullmatch(text)
    if match is None:
        raise ValueError(f"not a duration in the wire format: {text!r}")
    sign, days, hours, minutes, seconds, micros = match.groups()
    value = timedelta(
        days=int(days or 0),
        hours=int(hours or 0),
        minutes=int(minutes or 0),
        seconds=int(seconds),
        microseconds=int(micros),
    )
    return -value if sign else value


_ENCODERS: dict[type, Any] = {
    Decimal: encode_decimal,
    datetime: encode_datetime,
    date: date.isoformat,
    time: lambda v: v.isoformat(timespec="microseconds"),
    timedelta: encode_timedelta,
    bytes: lambda v: base64.b64encode(v).decode("ascii"),
    bytearray: lambda v: base64.b64encode(v).decode("ascii"),
    memoryview: lambda v: base64.b64encode(v).decode("ascii"),
    set: sorted,
    frozenset: sorted,
    ipaddress.IPv4Address: str,
    ipaddress.IPv6Address: str,
    ipaddress.IPv4Network: str,
    ipaddress.IPv6Network: str,
    ipaddress.IPv4Interface: str,
    ipaddress.IPv6Interface: str,
}


def default(value: Any) -> Any:
    """orjson's `default` hook: the types orjson does not encode the way we want."""
    encoder = _ENCODERS.get(type(value))
    if encoder is None:
        # subclasses (a datetime subclass, an IntEnum) are rare: look them up the slow way
        for kind, candidate in _ENCODERS.items():
            if isinstance(value, kind):
                encoder = candidate
                break
        else:
            raise TypeError(f"cannot encode {type(value).__name__} value for the wire")
    return encoder(value)


def dumps(obj: Any) -> bytes:
    return orjson.dumps(obj, default=default, option=DUMPS_OPTIONS)
