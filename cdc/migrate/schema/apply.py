"""`cdc schema --apply`: create what the target lacks, compare what it has.

Idempotent: every statement first asks the target whether its object exists.
An existing table is never dropped or altered: its columns are compared with
what the DDL would create (the target itself parses the DDL into a scratch
table, so types are compared in the target's own spelling) and differences
are reported."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import psycopg
import pymysql

from cdc.ddl.model import Statement
from cdc.mysql import ddl as ddl_mysql
from cdc.postgres import ddl as ddl_postgres
from sinks.mysql.statements import quote

ColumnShape = tuple[str, str, bool]  # name, type as the target spells it, nullable
# what either driver raises when the server refuses or cannot be reached
DB_ERRORS = (psycopg.Error, pymysql.err.Error)


@dataclass(frozen=True, slots=True)
class Outcome:
    statement: Statement
    action: Literal["created", "exists", "differs", "failed"]
    details: list[str] = field(default_factory=list)


class TargetCatalog(Protocol):
    def exists(self, statement: Statement) -> bool: ...

    def columns(self, schema: str, table: str) -> list[ColumnShape]: ...

    def probe(self, statement: Statement) -> list[ColumnShape]: ...

    def execute(self, statement: Statement) -> None: ...


class PostgresTarget:
    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self._conn = conn

    def _one(self, query: str, params: tuple[Any, ...]) -> bool:
        row = self._conn.execute(query.encode(), params).fetchone()
        return bool(row and row[0])

    def exists(self, statement: Statement) -> bool:
        qualified = ddl_postgres.ident(statement.schema, statement.table)
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
        return self._columns(ddl_postgres.ident(schema, table))

    def probe(self, statement: Statement) -> list[ColumnShape]:
        with self._conn.transaction(force_rollback=True):
            self._conn.execute(statement.probe_sql.encode())
            return self._columns(ddl_postgres.ident(*ddl_postgres.PROBE))

    def execute(self, statement: Statement) -> None:
        self._conn.execute(statement.sql.encode())


class MysqlTarget:
    """`conn`: a DictCursor connection to the target database."""

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
        probe = f"{quote(statement.schema)}.{quote(ddl_mysql.PROBE)}"
        with self._conn.cursor() as cur:
            cur.execute(f"DROP TEMPORARY TABLE IF EXISTS {probe}")
            cur.execute(statement.probe_sql)
        try:
            return self.columns(statement.schema, ddl_mysql.PROBE)
        finally:
            with self._conn.cursor() as cur:
                cur.execute(f"DROP TEMPORARY TABLE {probe}")

    def execute(self, statement: Statement) -> None:
        with self._conn.cursor() as cur:
            cur.execute(statement.sql)


def compare(expected: list[ColumnShape], found: list[ColumnShape]) -> list[str]:
    """How an existing table differs from what the DDL would create."""
    have = {name: (kind, nullable) for name, kind, nullable in found}
    differences = []
    for name, kind, nullable in expected:
        if name not in have:
            differences.append(f"column {name} is missing (expected {kind})")
            continue
        found_kind, found_nullable = have.pop(name)
        if found_kind != kind:
            differences.append(f"column {name} is {found_kind}, expected {kind}")
        if found_nullable != nullable:
            wanted = "nullable" if nullable else "NOT NULL"
            differences.append(
                f"column {name} is {'not ' if nullable else ''}nullable, expected {wanted}"
            )
    differences += [f"column {name} is not in the source" for name in have]
    return differences


def apply(target: TargetCatalog, statements: Iterable[Statement]) -> list[Outcome]:
    """Run each statement whose object the target lacks. A statement the
    target refuses is reported; the others still run."""
    outcomes = []
    for statement in statements:
        try:
            if not target.exists(statement):
                target.execute(statement)
                outcomes.append(Outcome(statement, "created"))
            elif statement.kind == "table":
                expected = target.probe(statement)
                found = target.columns(statement.schema, statement.table)
                differences = compare(expected, found)
                outcomes.append(
                    Outcome(statement, "differs" if differences else "exists", differences)
                )
            else:
                outcomes.append(Outcome(statement, "exists"))
        except DB_ERRORS as exc:
            outcomes.append(Outcome(statement, "failed", [str(exc).strip()]))
    return outcomes
