"""PostgreSQL's part in `cdc verify` (`cdc.engine.verify.VerifySql`): a table's
columns by family, and the SQL that writes a row's canonical text."""

from __future__ import annotations

from collections.abc import Callable, Sequence
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
    "text": "text", "varchar": "text", "bpchar": "text", "uuid": "uuid", "bytea": "bytes",
    "timestamp": "timestamp", "timestamptz": "timestamptz", "date": "date", "json": "json",
    "jsonb": "json", "float4": "float", "float8": "float",
}  # fmt: skip
_STAMP = "'YYYY-MM-DD\"T\"HH24:MI:SS.US'"


def text(column: ColumnInfo, name: str) -> str:
    """The canonical text (`cdc.engine.verify`) of the column, quoted as `name`."""
    family = column.family
    if family == "bool":
        return f"{name}::int::text"
    if family == "decimal":
        return f"trim_scale({name})::text"
    if family == "bytes":
        return f"encode({name}, 'hex')"
    if family == "timestamp":
        return f"to_char({name}, {_STAMP})"
    if family == "timestamptz":
        return f"to_char({name} AT TIME ZONE 'UTC', {_STAMP})"
    if family == "date":
        return f"to_char({name}, 'YYYY-MM-DD')"
    return f"{name}::text"


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
        names = dict(
            conn.execute(
                "SELECT a.attname, t.typname FROM pg_attribute a"
                " JOIN pg_type t ON t.oid = a.atttypid WHERE a.attrelid = %s AND a.attnum > 0",
                (row[0],),
            ).fetchall()
        )
        columns = tuple(
            ColumnInfo(c.name, names[c.name], _FAMILIES.get(names[c.name], "other"))
            for c in found.columns
        )
        return TableInfo(columns, found.primary_key)

    def key(self, column: ColumnInfo) -> str:
        name = ident(column.name)
        return f'{name} COLLATE "C"' if column.family == "text" else name

    def row_hash(self, columns: Sequence[ColumnInfo]) -> str:
        idents = [ident(c.name) for c in columns]
        nulls = " || ".join(f"(CASE WHEN {i} IS NULL THEN '1' ELSE '0' END)" for i in idents)
        texts = " || '|' || ".join(
            f"coalesce({text(c, i)}, '')" for c, i in zip(columns, idents, strict=True)
        )
        return f"('x' || substr(md5({nulls} || '|' || {texts}), 1, 15))::bit(60)::bigint"

    def decoder(self, column: ColumnInfo) -> Callable[[Any], Any] | None:
        return None  # psycopg gives JSON parsed and arrays as lists
