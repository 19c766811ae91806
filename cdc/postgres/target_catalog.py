"""What a PostgreSQL target has, for `cdc schema --apply`: objects looked up by
name, a table's columns in the target's own spelling, and a statement's table
as PostgreSQL parses it (in a transaction rolled back)."""

from __future__ import annotations

from typing import Any

import psycopg

from cdc.ddl.model import Statement
from cdc.engine.schema import ColumnShape
from cdc.postgres.ddl import PROBE, ident


class PgCatalog:
    """`cdc.engine.schema.TargetCatalog` of a PostgreSQL target."""

    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self._conn = conn

    def _one(self, query: str, params: tuple[Any, ...]) -> bool:
        row = self._conn.execute(query.encode(), params).fetchone()
        return bool(row and row[0])

    def exists(self, statement: Statement) -> bool:
        qualified = ident(statement.schema, statement.table)
        if statement.kind == "schema":
            return self._one("SELECT 1 FROM pg_namespace WHERE nspname = %s", (statement.schema,))
        if statement.kind == "type":
            return self._one("SELECT to_regtype(%s) IS NOT NULL", (statement.name,))
        if statement.kind == "table":
            return self._one("SELECT to_regclass(%s) IS NOT NULL", (qualified,))
        if statement.kind == "foreign_key":
            return self._one(
                "SELECT 1 FROM pg_constraint WHERE conrelid = to_regclass(%s) AND conname = %s",
                (qualified, statement.name),
            )
        return self._one(
            "SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE n.nspname = %s AND c.relname = %s",
            (statement.schema, statement.name),
        )

    def _columns(self, qualified: str) -> list[ColumnShape]:
        rows = self._conn.execute(
            "SELECT attname, format_type(atttypid, atttypmod), NOT attnotnull FROM pg_attribute"
            " WHERE attrelid = to_regclass(%s) AND attnum > 0 AND NOT attisdropped"
            " ORDER BY attnum",
            (qualified,),
        ).fetchall()
        return [(name, kind, nullable) for name, kind, nullable in rows]

    def columns(self, schema: str, table: str) -> list[ColumnShape]:
        return self._columns(ident(schema, table))

    def probe(self, statement: Statement) -> list[ColumnShape]:
        with self._conn.transaction(force_rollback=True):
            self._conn.execute(statement.probe_sql.encode())
            return self._columns(ident(*PROBE))

    def execute(self, statement: Statement) -> None:
        self._conn.execute(statement.sql.encode())
