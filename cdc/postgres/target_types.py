"""Source column types on a PostgreSQL target: the DDL type, and how a wire
value becomes PostgreSQL's text input form (for COPY into a staging table).

| MySQL/MariaDB source          | PostgreSQL target            |
|-------------------------------|------------------------------|
| tinyint, smallint             | smallint                     |
| mediumint, int                | integer                      |
| int unsigned, bigint          | bigint                       |
| bigint unsigned               | numeric(20,0)                |
| decimal(p,s)                  | numeric(p,s)                 |
| float / double                | real / double precision      |
| year                          | smallint                     |
| date                          | date                         |
| time(n)                       | interval (MySQL TIME spans -838h..838h) |
| datetime(n) / timestamp(n)    | timestamp(n) / timestamptz(n) |
| char, varchar, *text, enum    | text (enum: with a CHECK of its labels) |
| varchar(n) (`cdc schema`, from the catalog) | varchar(n)    |
| binary, varbinary, *blob, bit, geometry | bytea (geometry: SRID + WKB) |
| set                           | text[]                       |
| json                          | jsonb                        |

Unsigned integers get a CHECK (column >= 0). A PostgreSQL source keeps its
own type names (PG to PG is exact); its enums keep their type where the
labels are known (`cdc schema` reads them from the catalog and creates the
type), and other user-defined types become text.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Callable
from typing import Any

import orjson

from cdc.schemas import Column, TableSchema
from cdc.values import decode_timedelta

TextEncoder = Callable[[Any], str]

_MYSQL_TYPES = {
    "tinyint": "smallint",
    "tinyint unsigned": "smallint",
    "smallint": "smallint",
    "smallint unsigned": "integer",
    "mediumint": "integer",
    "mediumint unsigned": "integer",
    "int": "integer",
    "int unsigned": "bigint",
    "bigint": "bigint",
    "bigint unsigned": "numeric(20,0)",
    "float": "real",
    "double": "double precision",
    "year": "smallint",
    "date": "date",
    "json": "jsonb",
    "set": "text[]",
}
_MYSQL_BYTES = {"binary", "varbinary", "bit", "geometry"}
_TEMPORAL = re.compile(r"(datetime|timestamp|time)\((\d)\)")


def pg_type(column: Column, connector: str) -> str:
    """The target DDL type of a source column."""
    name = column.type
    if connector == "postgresql":
        kind = column.extra.get("kind", "b")
        # an enum keeps its type where its labels are known: `cdc schema` creates it first
        if kind in {"b", "r", "m"} or (kind == "e" and column.extra.get("labels")):
            return name
        return "text"
    if name in _MYSQL_TYPES:
        return _MYSQL_TYPES[name]
    if name.startswith("decimal"):
        return "numeric" + name.removeprefix("decimal")
    if name.startswith("varchar("):  # the catalog knows the length, the binlog does not
        return "character varying" + name.removeprefix("varchar")
    temporal = _TEMPORAL.fullmatch(name)
    if temporal:
        kind, fsp = temporal.groups()
        return {"datetime": "timestamp", "timestamp": "timestamptz", "time": "interval"}[kind] + (
            f"({fsp})" if kind != "time" else ""
        )
    if name in _MYSQL_BYTES or name.endswith("blob"):
        return "bytea"
    return "text"


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, dict | list):
        return _json(value)
    return str(value)


def _bytes(value: Any) -> str:
    return "\\x" + base64.b64decode(value).hex()


def _json(value: Any) -> str:
    return orjson.dumps(value).decode()


def _bool(value: Any) -> str:
    return "t" if value else "f"


def _interval(value: Any) -> str:
    # PostgreSQL reads ISO-8601 durations, but not with a leading sign
    if isinstance(value, str) and value.startswith("-P"):
        return f"{decode_timedelta(value).total_seconds():.6f} seconds"
    return _text(value)


def _array_item(value: Any) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, list):
        return "{" + ",".join(_array_item(v) for v in value) + "}"
    if isinstance(value, bool):
        return _bool(value)
    if isinstance(value, dict):
        value = _json(value)
    text = str(value)
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _array(value: Any) -> str:
    return _array_item(value) if isinstance(value, list) else _text(value)


_ENCODERS: dict[str, TextEncoder] = {
    "array": _array,
    "bytes": _bytes,
    "json": _json,
    "bool": _bool,
    "interval": _interval,
    "text": _text,
}


def encoder_kind(target_type: str) -> str:
    """Which encoder a target column of `target_type` (as format_type() names
    it) takes, by the name `cdc_copytext.RowEncoder` knows it by too."""
    base = target_type.split("(", maxsplit=1)[0].strip()
    if target_type.endswith("[]"):
        return "array"
    if base == "bytea":
        return "bytes"
    if base in {"json", "jsonb"}:
        return "json"
    if base == "boolean":
        return "bool"
    if base == "interval":
        return "interval"
    return "text"


_BINARY_KINDS = {
    "smallint": "int2",
    "integer": "int4",
    "bigint": "int8",
    "real": "float4",
    "double precision": "float8",
    "numeric": "numeric",
    "text": "text",
    "character varying": "text",
    "character": "text",
    "boolean": "bool",
    "date": "date",
    "timestamp without time zone": "timestamp",
    "timestamp with time zone": "timestamptz",
    "bytea": "bytea",
    "json": "json",
    "jsonb": "jsonb",
    "uuid": "uuid",
}
_TYPMOD = re.compile(r"\(\d+(?:,\d+)?\)")


def binary_kind(target_type: str) -> str | None:
    """Which binary COPY encoder of `cdc_copytext.RowEncoder` a target
    column of `target_type` (as format_type() names it) takes; None for a
    type it has none for (the table is then copied in text)."""
    return _BINARY_KINDS.get(_TYPMOD.sub("", target_type))


def text_encoder(target_type: str) -> TextEncoder:
    """Wire value -> PostgreSQL text input for a target column of `target_type`."""
    return _ENCODERS[encoder_kind(target_type)]


def target_columns(schema: TableSchema) -> dict[str, str]:
    """Column name -> target DDL type, in source order."""
    return {c.name: pg_type(c, schema.connector) for c in schema.columns}
