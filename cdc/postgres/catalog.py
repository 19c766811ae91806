"""Tables of the PostgreSQL source as the catalog describes them."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import psycopg

from cdc.postgres.types import TypeRegistry
from cdc.schemas import Column, TableSchema

CONNECTOR = "postgresql"


@dataclass(frozen=True, slots=True)
class PgColumn:
    name: str
    type_oid: int
    typmod: int


@dataclass(frozen=True, slots=True)
class PgTable:
    oid: int
    schema: str
    name: str
    columns: tuple[PgColumn, ...]
    primary_key: tuple[str, ...]  # empty when the table has none
    replica_identity: str  # d default, f full, i index, n nothing
    not_null: frozenset[str]

    @property
    def qualified(self) -> str:
        return f"{self.schema}.{self.name}"

    @property
    def key(self) -> tuple[str, ...]:
        """The columns that identify a row on the wire: the primary key, or,
        for a table without one (REPLICA IDENTITY FULL), every column."""
        return self.primary_key or tuple(column.name for column in self.columns)


_TABLES = """
SELECT c.oid, n.nspname, c.relname, c.relreplident
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p')
  AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname NOT LIKE 'pg\\_%%'
  AND NOT c.relispartition
ORDER BY n.nspname, c.relname
"""

_COLUMNS = """
SELECT a.attname, a.atttypid, a.atttypmod, a.attnotnull
FROM pg_attribute a
WHERE a.attrelid = %s AND a.attnum > 0 AND NOT a.attisdropped
  AND a.attgenerated = ''
ORDER BY a.attnum
"""

_PRIMARY_KEY = """
SELECT a.attname
FROM pg_index i
JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord) ON true
JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
WHERE i.indrelid = %s AND i.indisprimary
ORDER BY k.ord
"""


def load_table(conn: psycopg.Connection[Any], oid: int) -> PgTable:
    row = conn.execute(
        "SELECT n.nspname, c.relname, c.relreplident FROM pg_class c"
        " JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = %s",
        (oid,),
    ).fetchone()
    if row is None:
        raise LookupError(f"table with oid {oid} does not exist")
    schema, name, identity = row
    columns = conn.execute(_COLUMNS, (oid,)).fetchall()
    key = tuple(r[0] for r in conn.execute(_PRIMARY_KEY, (oid,)).fetchall())
    return PgTable(
        oid=oid,
        schema=schema,
        name=name,
        columns=tuple(PgColumn(c[0], c[1], c[2]) for c in columns),
        primary_key=key,
        replica_identity=identity,
        not_null=frozenset(c[0] for c in columns if c[3]),
    )


def select_tables(
    conn: psycopg.Connection[Any], selects: Callable[[str, str], bool]
) -> list[PgTable]:
    """The source's tables (configured list or include/exclude patterns)."""
    found = conn.execute(_TABLES).fetchall()
    return [load_table(conn, oid) for oid, schema, name, _ in found if selects(schema, name)]


def table_names(conn: psycopg.Connection[Any]) -> list[tuple[str, str]]:
    """Every table `select_tables` chooses from, as (schema, table)."""
    return [(schema, name) for _, schema, name, _ in conn.execute(_TABLES).fetchall()]


def table_schema(
    registry: TypeRegistry,
    schema: str,
    table: str,
    columns: Sequence[PgColumn],
    key: Sequence[str],
    not_null: frozenset[str],
) -> TableSchema:
    """One builder for the catalog (snapshot) and Relation messages (stream),
    so the same table shape gets the same fingerprint on both paths."""
    out = []
    for column in columns:
        info = registry.info(column.type_oid, column.typmod)
        extra: dict[str, Any] = {"oid": column.type_oid, "kind": info.kind}
        if info.base_oid != column.type_oid:
            extra["base_oid"] = info.base_oid
        out.append(Column(column.name, info.name, column.name not in not_null, extra))
    return TableSchema(CONNECTOR, schema, table, tuple(out), tuple(key))
