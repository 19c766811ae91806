"""A value read for `cdc verify`'s Python hashing, in the form its column pair compares in
(`cdc.engine.verify.compared_as`): whatever the engine, driver or spelling, one value of
the form has one Python value here, which `canonical.row_hash` then hashes.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import math
import re
import struct
import uuid
from collections.abc import Callable
from datetime import time, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from cdc.migrate.verify.canonical import EXACT

_MICROS = {"D": 86_400_000_000, "H": 3_600_000_000, "M": 60_000_000, "S": 1_000_000}
_MONTH = 30 * _MICROS["D"]  # PostgreSQL compares intervals with 30-day months
_ISO_DATE = re.compile(r"(?:([-+]?\d+)Y)?(?:([-+]?\d+)M)?(?:([-+]?\d+)W)?(?:([-+]?\d+)D)?")
_ISO_TIME = re.compile(r"(?:([-+]?\d+)H)?(?:([-+]?\d+)M)?(?:([-+]?\d+(?:\.\d+)?)S)?")
_CLOCK = re.compile(r"([-+])?(\d+):(\d\d)(?::(\d\d(?:\.\d+)?))?")
# PostgreSQL's own interval text (IntervalStyle postgres): "1 year -2 mons 3 days -04:05:06.5"
_PG_INTERVAL = re.compile(
    r"(?:([-+]?\d+) years? ?)?(?:([-+]?\d+) mons? ?)?(?:([-+]?\d+) days? ?)?"
    r"([-+]?\d+:\d\d:\d\d(?:\.\d+)?)?"
)
_ZONED = re.compile(r"(\d\d:\d\d(?::\d\d(?:\.\d+)?)?)([-+])(\d\d)(?::?(\d\d))?(?::(\d\d))?")


def float4(value: Any) -> Any:
    """The shortest decimal that reads back as the same single-precision float: what a
    PostgreSQL real and a MySQL FLOAT hold, whichever digits a driver printed."""
    if not isinstance(value, float | int | Decimal) or isinstance(value, bool):
        return value
    number = float(value)
    if not math.isfinite(number):
        return float8(number)
    try:
        bits = struct.pack("<f", number)
    except OverflowError:  # past a single's range (a double column): no single holds it
        return float8(number)
    single = struct.unpack("<f", bits)[0]
    for digits in range(1, 10):  # 9 significant digits always read back
        text = f"{single:.{digits}g}"
        with contextlib.suppress(OverflowError):  # rounded up past the largest single
            if struct.pack("<f", float(text)) == bits:
                return float8(Decimal(text))
    return float8(single)


def float8(value: Any) -> Any:
    """-0 is 0 (as = has it on both engines)."""
    if isinstance(value, float | Decimal) and value == 0:
        return Decimal(0)
    return value


def duration(value: Any) -> Any:
    """Microseconds: of an interval, a TIME, a time of day, or their text (ISO-8601 as the
    stream writes an interval into a text column, or [-]H:MM:SS); other text as it is."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int | Decimal):
        return int(value)
    if isinstance(value, timedelta):
        return (value.days * 86_400 + value.seconds) * 1_000_000 + value.microseconds
    if isinstance(value, time):
        return _MICROS["S"] * (value.hour * 3600 + value.minute * 60 + value.second) + (
            value.microsecond
        )
    if isinstance(value, str):
        text = value.strip()
        if "P" in text:
            parsed = _iso_duration(text)
        else:
            parsed = _clock(text)
            parsed = _pg_interval(text) if parsed is None else parsed
        return value if parsed is None else parsed
    return value


def _iso_duration(text: str) -> int | None:
    negative = text.startswith("-")
    date_part, _, time_part = text.removeprefix("-").removeprefix("P").partition("T")
    if not text.removeprefix("-").startswith("P"):
        return None
    dates, times = _ISO_DATE.fullmatch(date_part), _ISO_TIME.fullmatch(time_part)
    if dates is None or times is None or text.endswith(("P", "T")):
        return None
    years, months, weeks, days = (int(v or 0) for v in dates.groups())
    hours, minutes, seconds = times.groups()
    try:
        micros = (
            (years * 12 + months) * _MONTH
            + (weeks * 7 + days) * _MICROS["D"]
            + int(hours or 0) * _MICROS["H"]
            + int(minutes or 0) * _MICROS["M"]
            + int(Decimal(seconds or 0) * _MICROS["S"])
        )
    except InvalidOperation:
        return None
    return -micros if negative else micros


def _pg_interval(text: str) -> int | None:
    match = _PG_INTERVAL.fullmatch(text)
    if match is None or not text:
        return None
    years, months, days, clock = match.groups()
    micros = (int(years or 0) * 12 + int(months or 0)) * _MONTH + int(days or 0) * _MICROS["D"]
    time_of_day = _clock(clock) if clock else 0
    return None if time_of_day is None else micros + time_of_day


def _clock(text: str) -> int | None:
    match = _CLOCK.fullmatch(text)
    if match is None:
        return None
    sign, hours, minutes, seconds = match.groups()
    micros = int(hours) * _MICROS["H"] + int(minutes) * _MICROS["M"]
    micros += int(Decimal(seconds or 0) * _MICROS["S"])
    return -micros if sign == "-" else micros


def timetz(value: Any) -> Any:
    """[microseconds of the day, UTC offset in seconds]: PostgreSQL's timetz equality,
    from the value or its text ("12:00:00.5+02", "12:00:00.000000+02:00")."""
    if isinstance(value, time) and value.tzinfo is not None:
        zone = value.utcoffset() or timedelta()
        return [duration(value.replace(tzinfo=None)), int(zone.total_seconds())]
    if isinstance(value, str) and (match := _ZONED.fullmatch(value.strip())):
        clock, sign, hours, minutes, seconds = match.groups()
        offset = int(hours) * 3600 + int(minutes or 0) * 60 + int(seconds or 0)
        return [_clock(clock), -offset if sign == "-" else offset]
    return value


def document(value: Any) -> Any:
    """A JSON document (or its text, or an array) as one text: keys sorted, no spacing,
    numbers in their shortest exact form; text that is not JSON as it is."""
    if isinstance(value, str | bytes):
        try:
            value = json.loads(value, parse_float=Decimal)
        except ValueError:
            return value
    return _json_text(value)


def _json_text(value: Any) -> str:
    if isinstance(value, dict):
        items = sorted((str(k), _json_text(v)) for k, v in value.items())
        return "{" + ",".join(f"{json.dumps(k, ensure_ascii=False)}:{v}" for k, v in items) + "}"
    if isinstance(value, list | tuple):
        return "[" + ",".join(_json_text(v) for v in value) + "]"
    if value is None or isinstance(value, bool):
        return json.dumps(value)
    if isinstance(value, int | float | Decimal):
        number = Decimal(repr(value)) if isinstance(value, float) else Decimal(value)
        return format(number.normalize(EXACT), "f") if number.is_finite() else str(number)
    return json.dumps(str(value), ensure_ascii=False)


def members(value: Any) -> Any:
    """A SET's members as a set: sorted, each once (MySQL's "b,a" text, PostgreSQL's array)."""
    if isinstance(value, str):
        value = value.split(",") if value else []
    if isinstance(value, list | tuple | set | frozenset):
        return sorted({str(v) for v in value if v is not None})
    return value


def uuid_hex(value: Any) -> Any:
    """32 lower-case hex digits: PostgreSQL reads a uuid with or without hyphens, any case."""
    if isinstance(value, uuid.UUID):
        return value.hex
    return value.lower().replace("-", "") if isinstance(value, str) else value


def unpadded(value: Any) -> Any:
    """A CHAR's value: PostgreSQL and MySQL ignore its trailing spaces."""
    return value.rstrip(" ") if isinstance(value, str) else value


def address(value: Any) -> Any:
    """An inet or cidr (or its text) as [address, prefix length]: one spelling for
    "::ffff:1.2.3.4" and "::ffff:102:304", and "1.2.3.4" and "1.2.3.4/32"."""
    try:
        interface = ipaddress.ip_interface(str(value).strip())
    except ValueError:
        return value
    return [str(interface.ip), interface.network.prefixlen]


def bit_number(value: Any) -> Any:
    """A BIT's value as a number, from the bytes of either engine (MySQL: big-endian)."""
    if isinstance(value, bytes | bytearray | memoryview):
        return int.from_bytes(bytes(value), "big")
    return value


FORMS: dict[str, Callable[[Any], Any]] = {
    "float4": float4,
    "float8": float8,
    "duration": duration,
    "timetz": timetz,
    "json": document,
    "set": members,
    "uuid": uuid_hex,
    "char": unpadded,
    "bit": bit_number,
    "inet": address,
}


def in_form(form: str, value: Any) -> Any:
    """`value` (not None) in `form`; forms the drivers already agree on pass it as read."""
    convert = FORMS.get(form)
    return value if convert is None else convert(value)
