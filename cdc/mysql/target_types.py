"""Source column types on a MySQL/MariaDB target: the DDL type (for
`create_tables: true`), and how a wire value becomes the Python value PyMySQL
sends for the type the target column actually has.

| PostgreSQL source               | MySQL/MariaDB target                                   |
|---------------------------------|--------------------------------------------------------|
| smallint / integer / bigint     | SMALLINT / INT / BIGINT                                |
| numeric(p,s)                    | DECIMAL(p,s); past MySQL's limits DECIMAL(65,min(s,30)) |
| numeric                         | DECIMAL(65,30)                                         |
| real / double precision         | FLOAT / DOUBLE (no NaN, Infinity: those are dead letters) |
| boolean                         | TINYINT(1)                                             |
| text                            | LONGTEXT                                               |
| varchar(n) / char(n)            | VARCHAR(n) / CHAR(n) up to 255, else LONGTEXT          |
| bytea                           | LONGBLOB                                               |
| date                            | DATE                                                   |
| timestamp(n)                    | DATETIME(n)                                            |
| timestamptz(n)                  | DATETIME(n) holding UTC (TIMESTAMP ends in 2038)       |
| time(n)                         | TIME(n); bare time: TIME(6)                            |
| timetz                          | VARCHAR(32): "12:00:00.000000+02:00"                   |
| interval                        | VARCHAR(64): the ISO-8601 wire text "P1DT2H3M4.000005S" |
| uuid                            | CHAR(36) ascii                                         |
| json, jsonb, arrays             | JSON                                                   |
| inet, cidr                      | VARCHAR(43)                                            |
| enums with known labels (`cdc schema`) | ENUM('a','b')                                   |
| enums, domains, anything else   | LONGTEXT                                               |

A MySQL/MariaDB source keeps its types, except: timestamp(n) becomes
DATETIME(n) holding UTC (no 2038 limit, no implicit ON UPDATE); char and
varchar (the binlog does not carry their length) become LONGTEXT (`cdc
schema`, reading the catalog, keeps CHAR(n) and VARCHAR(n)); binary and
varbinary LONGBLOB; bit BIT(64) (its width is not on the wire either).

Key columns: MySQL indexes neither LONGTEXT nor LONGBLOB whole, so text keys
become VARCHAR(255) (or their declared VARCHAR(n)) and byte keys
VARBINARY(255). Text keys get a binary no-pad collation so that keys
PostgreSQL tells apart ('a', 'A', 'a ') stay distinct rows; other text
columns take the table's utf8mb4 default collation.

Wire values are converted by the target column's actual type (read from
information_schema), so hand-made target tables work too:

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

_PG_TYPES = {
    "smallint": "SMALLINT",
    "integer": "INT",
    "bigint": "BIGINT",
    "real": "FLOAT",
    "double precision": "DOUBLE",
    "boolean": "TINYINT(1)",
    "text": "LONGTEXT",
    "bytea": "LONGBLOB",
    "date": "DATE",
    "uuid": "CHAR(36) CHARACTER SET ascii COLLATE ascii_bin",
    "json": "JSON",
    "jsonb": "JSON",
    "inet": "VARCHAR(43)",  # an IPv6 address with its /prefix
    "cidr": "VARCHAR(43)",
}
_PG_NUMERIC = re.compile(r"numeric(?:\((\d+),(-?\d+)\))?")
_PG_TEMPORAL = re.compile(r"(timestamp|time)(?:\((\d)\))? with(out)? time zone")
_PG_CHARS = re.compile(r"(character varying|character)(?:\((\d+)\))?")
_MYSQL_SAME = {
    *(
        f"{i}{u}"
        for i in ("tinyint", "smallint", "mediumint", "int", "bigint")
        for u in ("", " unsigned")
    ),
    *("float", "double", "year", "date", "json", "geometry"),
    *(f"{s}{k}" for s in ("tiny", "", "medium", "long") for k in ("text", "blob")),
}
_MYSQL_TEMPORAL = re.compile(r"(datetime|timestamp|time)\((\d)\)")
_MYSQL_CHARS = re.compile(r"(var)?char\(\d+\)")  # from the catalog; the binlog has no length
_TEXT_DDL = ("LONGTEXT", "TEXT", "TINYTEXT", "MEDIUMTEXT", "JSON", "VARCHAR(", "CHAR(")
_BYTES_DDL = ("LONGBLOB", "BLOB", "TINYBLOB", "MEDIUMBLOB")
MAX_KEY_CHARS = 768  # InnoDB indexes at most 3072 bytes: 768 utf8mb4 characters


def _labels(labels: list[str]) -> str:
    return ",".join("'" + v.replace("\\", "\\\\").replace("'", "''") + "'" for v in labels)


def _pg_ddl(column: Column, key: bool) -> str:
    name = column.type
    labels = column.extra.get("labels")
    if column.extra.get("kind") == "e" and labels:
        return f"ENUM({_labels(labels)})"
    if name in _PG_TYPES:
        return _PG_TYPES[name]
    if name.endswith("]"):
        return "JSON"
    if name.startswith("interval"):
        return "VARCHAR(64)"
    numeric = _PG_NUMERIC.fullmatch(name)
    if numeric:
        if numeric.group(1) is None:
            return "DECIMAL(65,30)"
        precision, scale = int(numeric.group(1)), int(numeric.group(2))
        if scale < 0:  # PostgreSQL 15 rounds to tens, hundreds...: whole numbers
            return f"DECIMAL({min(precision - scale, 65)},0)"
        scale = min(scale, 30)  # PostgreSQL 15 allows a scale above the precision
        return f"DECIMAL({max(min(precision, 65), scale)},{scale})"
    temporal = _PG_TEMPORAL.fullmatch(name)
    if temporal:
        kind, fsp, without = temporal.groups()
        if kind == "time" and not without:
            return "VARCHAR(32)"
        return f"{'DATETIME' if kind == 'timestamp' else 'TIME'}({fsp or 6})"
    chars = _PG_CHARS.fullmatch(name)
    if chars and chars.group(2) is not None:
        length = int(chars.group(2))
        limit = MAX_KEY_CHARS if key and chars.group(1) == "character varying" else 255
        kind = "VARCHAR" if chars.group(1) == "character varying" else "CHAR"
        if length <= limit:
            return f"{kind}({length})"
    return "LONGTEXT"


def _mysql_ddl(column: Column) -> str:
    name = column.type
    if name in _MYSQL_SAME:
        return name.upper()
    if name.startswith("decimal") or _MYSQL_CHARS.fullmatch(name):
        return name.upper()
    temporal = _MYSQL_TEMPORAL.fullmatch(name)
    if temporal:
        kind, fsp = temporal.groups()
        return f"{'TIME' if kind == 'time' else 'DATETIME'}({fsp})"
    if name in ("binary", "varbinary"):
        return "LONGBLOB"
    if name == "bit":
        return "BIT(64)"
    labels = column.extra.get("labels")
    if name in ("enum", "set") and labels:
        return f"{name.upper()}({_labels(labels)})"
    return "LONGTEXT"


def mysql_type(column: Column, connector: str, key: bool, key_collation: str) -> str:
    """The target DDL type of a source column (`key`: part of the primary key)."""
    ddl = _pg_ddl(column, key) if connector == "postgresql" else _mysql_ddl(column)
    if not key:
        return ddl
    if ddl.startswith(_BYTES_DDL):
        return "VARBINARY(255)"
    if ddl.startswith(_TEXT_DDL) and "CHARACTER SET" not in ddl:
        sized = ddl if ddl.startswith(("VARCHAR(", "CHAR(")) else "VARCHAR(255)"
        return f"{sized} CHARACTER SET utf8mb4 COLLATE {key_collation}"
    return ddl


# -- wire value -> Python value for PyMySQL -------------------------------


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


# Both duration forms on the wire: cdc.values' "-P1DT2H3.000005S" (MySQL TIME)
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
