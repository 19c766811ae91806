"""What a MySQL/MariaDB target has, for `cdc schema --apply`: objects looked up
in information_schema, a table's columns in the target's own spelling, and a
statement's table as MySQL parses it (a TEMPORARY table)."""

from __future__ import annotations

from typing import Any

from cdc.ddl.model import Statement
from cdc.engine.schema import ColumnShape
from cdc.mysql.ddl import PROBE
from cdc.mysql.dialect import quote


class MysqlCatalog:
    """`cdc.engine.schema.TargetCatalog` of a MySQL target; `conn`: a DictCursor
    connection to the target database."""

    def __init__(self, conn: Any) -> None:
        self._conn = conn

    def _one(self, query: str, params: tuple[Any, ...]) -> bool:
        with self._conn.cursor() as cur:
            cur.execute(query, params)
            return cur.fetchone() is not None

    def exists(self, statement: Statement) -> bool:
        where = (statement.schema, statement.table)
        if statement.kind == "table":
            return self._one(
                "SELECT 1 FROM information_schema.TABLES"
                " WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s",
                where,
            )
        if statement.kind == "foreign_key":
            return self._one(
                "SELECT 1 FROM information_schema.TABLE_CONSTRAINTS WHERE TABLE_SCHEMA = %s"
                " AND TABLE_NAME = %s AND CONSTRAINT_TYPE = 'FOREIGN KEY'"
                " AND CONSTRAINT_NAME = %s",
                (*where, statement.name),
            )
        return self._one(
            "SELECT 1 FROM information_schema.STATISTICS"
            " WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s AND INDEX_NAME = %s",
            (*where, statement.name),
        )

    def columns(self, schema: str, table: str) -> list[ColumnShape]:
        with self._conn.cursor() as cur:
            cur.execute(f"SHOW COLUMNS FROM {quote(schema)}.{quote(table)}")
            return [(r["Field"], str(r["Type"]), r["Null"] == "YES") for r in cur.fetchall()]

    def probe(self, statement: Statement) -> list[ColumnShape]:
        # a TEMPORARY table: no implicit commit, invisible to other sessions
        probe = f"{quote(statement.schema)}.{quote(PROBE)}"
        with self._conn.cursor() as cur:
            cur.execute(f"DROP TEMPORARY TABLE IF EXISTS {probe}")
            cur.execute(statement.probe_sql)
        try:
            return self.columns(statement.schema, PROBE)
        finally:
            with self._conn.cursor() as cur:
                cur.execute(f"DROP TEMPORARY TABLE {probe}")

    def execute(self, statement: Statement) -> None:
        with self._conn.cursor() as cur:
            cur.execute(statement.sql)
