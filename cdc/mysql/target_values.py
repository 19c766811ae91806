"""How a wire value becomes the Python value PyMySQL sends for a MySQL/MariaDB
target column. Values are converted by the column's actual type (read from
information_schema), so hand-made target tables work too; the DDL types cdc
creates are `cdc.mysql.target_types`.

| target column               | wire value -> sent as                                  |
|-----------------------------|--------------------------------------------------------|
| integer types, TINYINT(1)   | int; true/false -> 1/0; "12" -> 12, "1.5" an error     |
| DECIMAL                     | Decimal (a plain-notation literal); "NaN", "Infinity" errors |
| FLOAT / DOUBLE              | float; "NaN", "Infinity", "-Infinity" errors           |
| DATETIME / TIMESTAMP        | naive UTC datetime ("...Z" and offsets converted)      |
| DATE                        | date                                                   |
| TIME                        | ISO duration -> timedelta (months an error); "12:00:00.5" as is |
| BLOB, BINARY, BIT, GEOMETRY | base64 -> bytes (text from a text source: UTF-8)       |
| JSON (MariaDB: json_valid)  | JSON text; a text source's string as is                |
| SET                         | list -> "a,b"                                          |
| text types, ENUM, others    | as is; objects and arrays as JSON text; booleans 1/0   |
"""

from __future__ import annotations

import base64
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

import orjson

from cdc.schemas import Column

Convert = Callable[[Any], Any]


@dataclass(frozen=True, slots=True)
class TargetColumn:
    name: str
    data_type: str  # information_schema DATA_TYPE: "int", "varchar", "longtext", ...
    column_type: str  # COLUMN_TYPE: "int(11) unsigned", "binary(16)", "set('a','b')"
    json: bool = False  # MySQL's JSON, or MariaDB's LONGTEXT with a json_valid check
    generated: bool = False  # computed by the server: never written


_INTEGERS = {"tinyint", "smallint", "mediumint", "int", "integer", "bigint", "year"}
_FLOATS = {"float", "double", "real"}
_BLOBS = {"binary", "varbinary", "tinyblob", "blob", "mediumblob", "longblob"}
_GEOMETRY = {
    "geometry",
    "point",
    "linestring",
    "polygon",
    "multipoint",
    "multilinestring",
    "multipolygon",
    "geometrycollection",
    "geomcollection",
}
_SOURCE_BYTES = {"bytea", "binary", "varbinary", "bit", "geometry"}
_TIME_OF_DAY = re.compile(r"\d{2}:\d{2}:\d{2}(\.\d{1,6})?")


def _json(value: Any) -> str:
    return orjson.dumps(value).decode()


def _integer(value: Any) -> Any:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, float):
        if not value.is_integer():
            raise ValueError(f"{value!r} is not a whole number")
        return int(value)
    if isinstance(value, str):
        number = Decimal(value)
        if number != number.to_integral_value():
            raise ValueError(f"{value!r} is not a whole number")
        return int(number)
    return value


def _decimal(value: Any) -> Any:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, str | float):
        # PyMySQL writes a Decimal as a plain-notation literal: exact, unlike a double
        number = Decimal(value) if isinstance(value, str) else Decimal(repr(value))
        if not number.is_finite():
            raise ValueError(f"MySQL DECIMAL has no {value}")
        return number
    return value


def _float(value: Any) -> Any:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, str | float):
        number = float(value)
        if not math.isfinite(number):
            raise ValueError(f"MySQL FLOAT and DOUBLE have no {value}")
        return number
    return value


def _date(value: Any) -> Any:
    return date.fromisoformat(value) if isinstance(value, str) else value


def _datetime(value: Any) -> Any:
    if not isinstance(value, str):
        return value
    parsed = datetime.fromisoformat(value)  # "Z" and offsets included (Python 3.11)
    if parsed.tzinfo is not None:
        # the session's time_zone is UTC: TIMESTAMP columns read naive values as UTC
        parsed = parsed.astimezone(UTC).replace(tzinfo=None)
    return parsed


# Both duration forms on the wire: cdc.values' "-PT26H3.000005S" (MySQL TIME)
# and PostgreSQL's intervalstyle iso_8601 ("P1Y2M-3DT4H5M6.5S", a sign per part).
_DURATION = re.compile(
    r"(-)?P(?:([-+]?\d+)Y)?(?:([-+]?\d+)M)?(?:([-+]?\d+)W)?(?:([-+]?\d+)D)?"
    r"(?:T(?:([-+]?\d+)H)?(?:([-+]?\d+)M)?(?:([-+]?\d+(?:\.\d+)?)S)?)?"
)


def parse_duration(text: str) -> timedelta:
    """An ISO-8601 duration without years or months (those have no fixed length)."""
    match = _DURATION.fullmatch(text)
    if match is None or text in ("P", "-P", "PT", "-PT"):
        raise ValueError(f"not an ISO-8601 duration: {text!r}")
    sign, years, months, weeks, days, hours, minutes, seconds = match.groups()
    if int(years or 0) or int(months or 0):
        raise ValueError(f"{text!r} counts months, which a TIME cannot")
    micros = round(Decimal(seconds or 0) * 1_000_000)
    value = timedelta(
        weeks=int(weeks or 0),
        days=int(days or 0),
        hours=int(hours or 0),
        minutes=int(minutes or 0),
        microseconds=micros,
    )
    return -value if sign else value


def _time(value: Any) -> Any:
    if not isinstance(value, str):
        return value
    if value.startswith(("P", "-P")):  # interval, MySQL TIME: TIME spans -838h..838h
        return parse_duration(value)
    if _TIME_OF_DAY.fullmatch(value):
        return value  # PostgreSQL's 24:00:00 is a valid MySQL TIME but no Python time
    raise ValueError(f"{value!r} does not fit a TIME column (a time zone?)")


def _base64(value: Any) -> Any:
    return base64.b64decode(value, validate=True) if isinstance(value, str) else value


def _encoded(value: Any) -> Any:
    if isinstance(value, str):
        return value.encode()
    if isinstance(value, dict | list):
        return orjson.dumps(value)
    return value


def _joined(value: Any) -> Any:
    return ",".join(str(v) for v in value) if isinstance(value, list) else value


def _other(value: Any) -> Any:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, dict | list):
        return _json(value)
    return value


def _bit(value: Any) -> Any:
    if isinstance(value, bool):
        return int(value)
    return _base64(value)


def _source_texty(source: Column | None) -> bool:
    if source is None:
        return False
    name = source.type
    return name.startswith(("character", "varchar", "char", "enum")) or name.endswith("text")


def converter(target: TargetColumn, source: Column | None) -> Convert:
    """Wire value (not None) -> the value PyMySQL sends for `target`.

    `source` (the column's source schema) settles what the wire cannot: a
    string is base64 bytes only if the source held bytes, a JSON document
    only if the source was not text, a list a SET only if the source was one.
    Raises ValueError, TypeError or ArithmeticError for values the column
    cannot hold exactly (those changes go to the dead-letter topic)."""
    kind = target.data_type
    source_type = source.type if source is not None else None
    if target.json:
        return (lambda v: v if isinstance(v, str) else _json(v)) if _source_texty(source) else _json
    if kind in _INTEGERS:
        return _integer
    if kind in ("decimal", "numeric"):
        return _decimal
    if kind in _FLOATS:
        return _float
    if kind == "date":
        return _date
    if kind in ("datetime", "timestamp"):
        return _datetime
    if kind == "time":
        return _time
    if kind == "bit":
        return _bit
    if kind in _BLOBS or kind in _GEOMETRY:
        from_bytes = (
            source_type is None or source_type in _SOURCE_BYTES or source_type.endswith("blob")
        )
        return _base64 if from_bytes else _encoded
    if kind == "set" or source_type == "set":
        return _joined
    return _other


def key_normalizer(target: TargetColumn) -> Convert:
    """Maps a converted key value and the value the server returns for it to
    one form, so the existence check can match them in Python."""
    kind = target.data_type
    if kind == "char":  # MySQL strips CHAR's padding on the way out
        return lambda v: v.rstrip(" ") if isinstance(v, str) else v
    if kind == "binary":  # and pads BINARY(n) with zero bytes
        width = int(re.sub(r"\D", "", target.column_type) or 0)
        return lambda v: bytes(v).ljust(width, b"\0") if isinstance(v, bytes) else v
    if kind == "bit":
        return lambda v: int.from_bytes(v, "big") if isinstance(v, bytes) else v
    if kind == "time":
        return _as_timedelta
    return _same


def _same(value: Any) -> Any:
    return value


def _as_timedelta(value: Any) -> Any:
    if isinstance(value, str) and _TIME_OF_DAY.fullmatch(value):
        value = time.fromisoformat(value)
    if isinstance(value, time):
        return timedelta(
            hours=value.hour,
            minutes=value.minute,
            seconds=value.second,
            microseconds=value.microsecond,
        )
    return value
