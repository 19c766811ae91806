"""Tables of the PostgreSQL source as the catalog describes them."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
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
    # column -> (default expression, the value the rows held when it was added)
    defaults: Mapping[str, tuple[str | None, str | None]] = field(default_factory=dict)
    # column -> attnum: a renamed column keeps its number
    attnums: Mapping[str, int] = field(default_factory=dict)

    @property
    def qualified(self) -> str:
        return f"{self.schema}.{self.name}"

    @property
    def key(self) -> tuple[str, ...]:
        """The columns that identify a row on the wire: the primary key, or,
        for a table without one (REPLICA IDENTITY FULL), every column."""
        return self.primary_key or tuple(column.name for column in self.columns)

    @property
    def keyless(self) -> bool:
        """No key of its own: its changes travel keyed by every column
        (`TableSchema.keyless`)."""
        return not self.primary_key and self.replica_identity == "f"


_TABLES = """
SELECT c.oid, n.nspname, c.relname, c.relreplident
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p')
  AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname NOT LIKE 'pg\\_%%'
  AND NOT c.relispartition
ORDER BY n.nspname, c.relname
"""

# PostgreSQL keeps the value an added column's default gave the rows already
# there (attmissingval) until the table is rewritten: the exact fill, even of
# now(). A column added with a volatile default rewrote the table instead.
_COLUMNS = """
SELECT a.attname, a.atttypid, a.atttypmod, a.attnotnull, a.attnum,
       pg_get_expr(d.adbin, d.adrelid),
       CASE WHEN a.atthasmissing
            THEN quote_literal((a.attmissingval::text::text[])[1]) END
FROM pg_attribute a
LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
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
        defaults={c[0]: (c[5], c[6]) for c in columns if c[5] is not None or c[6] is not None},
        attnums={c[0]: c[4] for c in columns},
    )


def select_tables(
    conn: psycopg.Connection[Any], selects: Callable[[str, str], bool]
) -> list[PgTable]:
    """The source's tables (configured list or include/exclude patterns)."""
    found = conn.execute(_TABLES).fetchall()
    return [load_table(conn, oid) for oid, schema, name, _ in found if selects(schema, name)]


def table_oids(conn: psycopg.Connection[Any]) -> list[tuple[int, str, str]]:
    """Every table `select_tables` chooses from, as (oid, schema, table)."""
    return [(oid, schema, name) for oid, schema, name, _ in conn.execute(_TABLES).fetchall()]


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
    defaults: Mapping[str, tuple[str | None, str | None]],
    *,
    keyless: bool | None = None,
) -> TableSchema:
    """One builder for the catalog (snapshot) and Relation messages (stream),
    so the same table shape gets the same fingerprint on both paths.

    `keyless`: the table has no primary key, `key` is its replica identity
    FULL (every column). None: told from the columns alone, the same way on
    both paths: a key of every column with a nullable one among them, which
    no primary key can have. A table without a primary key whose columns are
    all NOT NULL is then indistinguishable from one keyed by all its columns
    and travels as that (`cdc assess` names it)."""
    out = []
    for column in columns:
        info = registry.info(column.type_oid, column.typmod)
        extra: dict[str, Any] = {"oid": column.type_oid, "kind": info.kind}
        if info.base_oid != column.type_oid:
            extra["base_oid"] = info.base_oid
        default, fill = defaults.get(column.name, (None, None))
        nullable = column.name not in not_null
        out.append(Column(column.name, info.name, nullable, extra, default, fill))
    names = {column.name for column in columns}
    if keyless is None:
        keyless = set(key) == names and any(name not in not_null for name in key)
    return TableSchema(CONNECTOR, schema, table, tuple(out), tuple(key), keyless=keyless)
