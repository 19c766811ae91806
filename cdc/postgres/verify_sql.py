"""PostgreSQL's part in `cdc verify` (`cdc.engine.verify.VerifySql`): a table's
columns by family, and the SQL that writes a row's canonical text."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import psycopg
from psycopg import sql

from cdc.engine.session import Session
from cdc.engine.verify import ColumnInfo, TableInfo
from cdc.postgres.catalog import load_table
from cdc.postgres.ddl import ident
from cdc.postgres.sessions import PgSession, connect_verify
from cdc.secrets import PostgresDsn

_FAMILIES = {
    "int2": "int", "int4": "int", "int8": "int", "bool": "bool", "numeric": "decimal",
    "text": "text", "varchar": "text", "bpchar": "char", "uuid": "uuid", "bytea": "bytes",
    "timestamp": "timestamp", "timestamptz": "timestamptz", "date": "date", "json": "json",
    "jsonb": "jsonb", "float4": "float4", "float8": "float8", "time": "time",
    "timetz": "timetz", "interval": "interval", "inet": "inet", "cidr": "inet",
}  # fmt: skip
_STAMP = "'YYYY-MM-DD\"T\"HH24:MI:SS.US'"
_MICROS_PER = {"DAY": 86_400_000_000, "HOUR": 3_600_000_000, "MINUTE": 60_000_000}


def _family(name: str, kind: str, category: str) -> str:
    if kind == "e":
        return "enum"
    if category == "A":
        return "array"
    return _FAMILIES.get(name, "other")


def _micros(column: ColumnInfo, name: str) -> str:
    """A duration in whole microseconds, as PostgreSQL compares intervals: a month is 30
    days, a day 24 hours (so '1 day' and '24:00:00' are one value). EXTRACT is exact
    (numeric) from PostgreSQL 14; rounding keeps older versions' doubles whole."""
    if column.family == "time":
        return f"round(EXTRACT(EPOCH FROM {name})::numeric * 1000000)"
    months = f"(EXTRACT(YEAR FROM {name}) * 12 + EXTRACT(MONTH FROM {name}))::numeric"
    parts = " + ".join(
        f"EXTRACT({part} FROM {name})::numeric * {micros}" for part, micros in _MICROS_PER.items()
    )
    seconds = f"round(EXTRACT(SECOND FROM {name})::numeric * 1000000)"
    return f"({months} * {30 * _MICROS_PER['DAY']} + {parts} + {seconds})"


def text(column: ColumnInfo, name: str) -> str:
    """The canonical text (`cdc.engine.verify`) of the column in its form, quoted as `name`."""
    form, family = column.form or column.family, column.family
    if form == "number" and family == "bool":
        return f"{name}::int::text"
    if form == "number" and family == "decimal":
        return f"trim_scale({name})::text"
    if form == "char":
        return f"rtrim({name}::text, ' ')"
    if form == "uuid":
        return f"replace(lower({name}::text), '-', '')"
    if form == "bytes":
        return f"encode({name}, 'hex')"
    if form == "timestamp" and family == "timestamptz":
        return f"to_char({name} AT TIME ZONE 'UTC', {_STAMP})"
    if form == "timestamp":
        return f"to_char({name}, {_STAMP})"
    if form == "date":
        return f"to_char({name}, 'YYYY-MM-DD')"
    if form == "duration":
        return f"{_micros(column, name)}::text"
    return f"{name}::text"


def select(column: ColumnInfo, name: str) -> str:
    """The column as read for hashing in Python (`cdc.engine.verify.VerifySql.select`)."""
    form, family = column.form, column.family
    if form == "duration" and family in {"interval", "time"}:
        return _micros(column, name)  # psycopg counts a year as 365 days, not 12 months
    if form == "json" and family == "array":
        return f"array_to_json({name})::text"
    if form in {"json", "uuid", "char", "timetz"} and family != "array":
        # json as text: psycopg parses numbers as floats, losing digits
        return f"{name}::text"
    return name


def table_rows(dsn: str, table: str, columns: Sequence[str]) -> list[tuple[Any, ...]]:
    """Every row of `table` (schema.table), for a whole-table `canonical.digest`."""
    schema, name = table.split(".", 1)
    query = sql.SQL("SELECT {} FROM {}").format(
        sql.SQL(", ").join(sql.Identifier(c) for c in columns), sql.Identifier(schema, name)
    )
    with psycopg.connect(dsn) as conn:
        return conn.execute(query).fetchall()


class PgVerify:
    def __init__(self, dsn: PostgresDsn) -> None:
        self._dsn = dsn

    def connect(self) -> Session:
        return PgSession(connect_verify(self._dsn))

    def describe(self, session: Session, schema: str, table: str) -> TableInfo | None:
        assert isinstance(session, PgSession), "a session of this engine"
        conn = session.conn
        row = conn.execute(
            "SELECT c.oid FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE n.nspname = %s AND c.relname = %s AND c.relkind IN ('r', 'p')",
            (schema, table),
        ).fetchone()
        if row is None:
            return None
        found = load_table(conn, row[0])
        types = {
            name: (typname, _family(typname, kind, category))
            for name, typname, kind, category in conn.execute(
                "SELECT a.attname, t.typname, t.typtype, t.typcategory FROM pg_attribute a"
                " JOIN pg_type t ON t.oid = a.atttypid WHERE a.attrelid = %s AND a.attnum > 0",
                (row[0],),
            ).fetchall()
        }
        columns = tuple(ColumnInfo(c.name, *types[c.name]) for c in found.columns)
        return TableInfo(columns, found.primary_key)

    def key(self, column: ColumnInfo) -> str:
        name = ident(column.name)
        if column.family in {"text", "char"}:
            return f'{name} COLLATE "C"'
        return f'{name}::text COLLATE "C"' if column.family == "enum" else name

    def row_hash(self, columns: Sequence[ColumnInfo]) -> str:
        idents = [ident(c.name) for c in columns]
        nulls = " || ".join(f"(CASE WHEN {i} IS NULL THEN '1' ELSE '0' END)" for i in idents)
        texts = " || '|' || ".join(
            f"coalesce({text(c, i)}, '')" for c, i in zip(columns, idents, strict=True)
        )
        return f"('x' || substr(md5({nulls} || '|' || {texts}), 1, 15))::bit(60)::bigint"

    def select(self, column: ColumnInfo) -> str:
        return select(column, ident(column.name))
