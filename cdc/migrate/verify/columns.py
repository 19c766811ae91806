"""What a verified table's columns are on each engine, and the SQL that writes a column's
canonical text, identical on PostgreSQL and MySQL/MariaDB.

A column belongs to a family. Two columns compare in the database when their
families are in one group below; the text each engine writes is then the same
byte for byte:

| family | PostgreSQL | MySQL/MariaDB |
|---|---|---|
| int, bool | `c::text` (bool as 1/0) | `CAST(c AS CHAR)` |
| decimal | `trim_scale(c)::text` | the decimal text without trailing zeros |
| text, uuid | `c::text` | `CONVERT(c USING utf8mb4)` (enum: its label) |
| bytes | `encode(c, 'hex')` | `LOWER(HEX(c))` |
| timestamp, timestamptz | `to_char(...)`, tz in UTC | `DATE_FORMAT(...)`, session in UTC |
| date | `to_char(c, 'YYYY-MM-DD')` | `DATE_FORMAT(c, '%Y-%m-%d')` |

Floats, JSON across engines, times, intervals and anything else are read and
hashed in Python (`cdc.migrate.verify.canonical`), whose form needs no agreement
from the servers. PostgreSQL to PostgreSQL compares any type whose name is the
same on both sides (and not `json`, whose text keeps the input's spacing) by
its output text, which the fixed session settings make identical.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
import pymysql.cursors
from pymysqlreplication.constants import FIELD_TYPE

from cdc.mysql import catalog as mysql_catalog
from cdc.postgres import catalog as pg_catalog

_GROUPS = {
    "int": "number",
    "bool": "number",
    "decimal": "number",
    "text": "text",
    "uuid": "text",
    "bytes": "bytes",
    "timestamp": "timestamp",
    "timestamptz": "timestamptz",
    "date": "date",
}
_PG_FAMILIES = {
    "int2": "int", "int4": "int", "int8": "int", "bool": "bool", "numeric": "decimal",
    "text": "text", "varchar": "text", "bpchar": "text", "uuid": "uuid", "bytea": "bytes",
    "timestamp": "timestamp", "timestamptz": "timestamptz", "date": "date", "json": "json",
    "jsonb": "json", "float4": "float", "float8": "float",
}  # fmt: skip
_MYSQL_FAMILIES = {
    FIELD_TYPE.TINY: "int", FIELD_TYPE.SHORT: "int", FIELD_TYPE.INT24: "int",
    FIELD_TYPE.LONG: "int", FIELD_TYPE.LONGLONG: "int", FIELD_TYPE.YEAR: "int",
    FIELD_TYPE.NEWDECIMAL: "decimal", FIELD_TYPE.DATETIME2: "timestamp",
    FIELD_TYPE.TIMESTAMP2: "timestamptz", FIELD_TYPE.DATE: "date", FIELD_TYPE.ENUM: "text",
    FIELD_TYPE.FLOAT: "float", FIELD_TYPE.DOUBLE: "float", FIELD_TYPE.JSON: "json",
    FIELD_TYPE.SET: "set",
}  # fmt: skip
_STRINGS = {FIELD_TYPE.VARCHAR, FIELD_TYPE.STRING, FIELD_TYPE.BLOB}
_PG_STAMP = "'YYYY-MM-DD\"T\"HH24:MI:SS.US'"
# doubled: every query is sent with parameters, so % is the drivers' placeholder mark
_MYSQL_STAMP = "'%%Y-%%m-%%dT%%H:%%i:%%s.%%f'"


@dataclass(frozen=True)
class ColumnInfo:
    name: str
    type: str  # the engine's type name
    family: str  # see the module's table; "other" for the rest


@dataclass(frozen=True)
class TableInfo:
    columns: tuple[ColumnInfo, ...]
    key: tuple[str, ...]

    def column(self, name: str) -> ColumnInfo | None:
        return next((c for c in self.columns if c.name == name), None)


def describe_pg(conn: psycopg.Connection[Any], schema: str, table: str) -> TableInfo | None:
    """The table's columns and primary key; None when it does not exist."""
    row = conn.execute(
        "SELECT c.oid FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE n.nspname = %s AND c.relname = %s AND c.relkind IN ('r', 'p')",
        (schema, table),
    ).fetchone()
    if row is None:
        return None
    found = pg_catalog.load_table(conn, row[0])
    names = dict(
        conn.execute(
            "SELECT a.attname, t.typname FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid"
            " WHERE a.attrelid = %s AND a.attnum > 0",
            (row[0],),
        ).fetchall()
    )
    columns = tuple(
        ColumnInfo(c.name, names[c.name], _PG_FAMILIES.get(names[c.name], "other"))
        for c in found.columns
    )
    return TableInfo(columns, found.primary_key)


def describe_mysql(
    conn: pymysql.connections.Connection[Any], database: str, table: str
) -> TableInfo | None:
    with conn.cursor(pymysql.cursors.DictCursor) as cur:
        cur.execute(
            "SELECT 1 FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s",
            (database, table),
        )
        if cur.fetchone() is None:
            return None
        found = mysql_catalog.load_table(cur, database, table)
    columns = []
    for spec in found.columns:
        if spec.json:
            family = "json"
        elif spec.type in _STRINGS:
            family = "bytes" if spec.encoding is None else "text"
        else:
            family = _MYSQL_FAMILIES.get(spec.type, "other")
        columns.append(ColumnInfo(spec.name, str(spec.type), family))
    return TableInfo(tuple(columns), found.primary_key)


def comparable_in_sql(pairs: Sequence[tuple[ColumnInfo, ColumnInfo]], same_engine: bool) -> bool:
    """Whether every (source, target) column pair writes the same canonical text in SQL."""
    for ours, theirs in pairs:
        group = _GROUPS.get(ours.family)
        if group is not None and group == _GROUPS.get(theirs.family):
            continue
        if same_engine and ours.type == theirs.type and ours.type != "json":
            continue
        return False
    return True


def pg_text(column: ColumnInfo, ident: str) -> str:
    family = column.family
    if family == "bool":
        return f"{ident}::int::text"
    if family == "decimal":
        return f"trim_scale({ident})::text"
    if family == "bytes":
        return f"encode({ident}, 'hex')"
    if family == "timestamp":
        return f"to_char({ident}, {_PG_STAMP})"
    if family == "timestamptz":
        return f"to_char({ident} AT TIME ZONE 'UTC', {_PG_STAMP})"
    if family == "date":
        return f"to_char({ident}, 'YYYY-MM-DD')"
    return f"{ident}::text"


def mysql_text(column: ColumnInfo, ident: str) -> str:
    family = column.family
    if family == "decimal":
        text = f"CAST({ident} AS CHAR)"
        # 1.50 -> 1.5 and 2.00 -> 2, as trim_scale does; integers keep their zeros
        trimmed = f"TRIM(TRAILING '.' FROM TRIM(TRAILING '0' FROM {text}))"
        return f"IF(INSTR({text}, '.') > 0, {trimmed}, {text})"
    if family == "bytes":
        return f"LOWER(HEX({ident}))"
    if family in {"timestamp", "timestamptz"}:
        return f"DATE_FORMAT({ident}, {_MYSQL_STAMP})"
    if family == "date":
        return f"DATE_FORMAT({ident}, '%%Y-%%m-%%d')"
    if family in {"text", "uuid"}:
        return f"CONVERT({ident} USING utf8mb4)"
    return f"CAST({ident} AS CHAR)"
