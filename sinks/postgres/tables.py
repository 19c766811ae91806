"""The PostgreSQL target's replicated tables as the sink writes them: their
columns and key from the catalog, created or extended with
`create_tables: true` (the DDL `cdc schema` prints, `cdc.postgres.ddl`), each
with its temporary staging table and COPY encoders.

A table is written through the columns its changes carry, not every column
the target has: a column that exists only on the target (one the application
added on the new side) keeps its default in a new row and its value in an
updated one. The columns are those of every schema version in the batch, so
a column the source added mid-batch is written even after a key of the
older version.

Everything here runs in the transaction of the batch that needs the table,
so a rollback undoes it; `TargetTables.undone_on_rollback` forgets it then.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import psycopg
from cdc_copytext import RowEncoder
from psycopg import sql

from cdc.ddl.model import TABLES, Notes, TableDef
from cdc.errors import TerminalError
from cdc.postgres import ddl as ddl_postgres
from cdc.postgres.target_types import TextEncoder, binary_kind, encoder_kind, text_encoder
from cdc.schemas import TableSchema
from sinks.postgres import schema_changes as schema_ddl
from sinks.postgres.copy_text import LineBuilder
from sinks.schema_changes import MISSING_TABLE_FIX, Evolution, SchemaFollower, carry_out

# Sink processes of one pipeline (sink.workers, replicas) start together and may
# create the same tables at once; CREATE ... IF NOT EXISTS is no guard against
# that (a unique violation in the catalog), this transaction lock is.
DDL_LOCK = "SELECT pg_advisory_xact_lock(hashtext('cdc_sink_ddl'))"


@dataclass
class TargetTable:
    schema: str
    name: str
    types: dict[str, str]  # column -> format_type()
    key: tuple[str, ...]
    stage: str
    encoders: dict[str, TextEncoder]
    lines: LineBuilder
    # insert events in wire form -> COPY data: binary where every column's type
    # has a binary encoder (the server parses no text then), else text
    row_encoder: RowEncoder
    direct_copy_wait: int = 0  # insert batches to stage before trying a direct COPY again

    @property
    def ident(self) -> sql.Composable:
        return sql.Identifier(self.schema, self.name)

    @property
    def qualified(self) -> str:
        return f"{self.schema}.{self.name}"


class TargetTables:
    """The tables one sink connection writes, by (schema, name)."""

    def __init__(
        self, conn: psycopg.Connection[Any], create_tables: bool, follower: SchemaFollower
    ) -> None:
        self._conn = conn
        self._create_tables = create_tables
        self._follower = follower
        # by target and the columns written: one staging table per column set
        self._known: dict[tuple[tuple[str, str], frozenset[str]], TargetTable] = {}
        # what each table has been through, and the column names it takes
        # (its own, and old names that map to one or to none)
        self._evolutions: dict[tuple[str, str], Evolution] = {}
        self._covered: dict[tuple[str, str], frozenset[str]] = {}
        self._stages = itertools.count()

    @contextmanager
    def undone_on_rollback(self) -> Iterator[None]:
        """Around a transaction: a rollback drops the staging tables (and
        target tables or columns) created in it, so they are forgotten, or the
        next batch would COPY into a staging table that no longer exists."""
        known, evolutions, covered = dict(self._known), dict(self._evolutions), dict(self._covered)
        try:
            with self._follower.undone_on_rollback():
                yield
        except BaseException:
            self._known, self._evolutions, self._covered = known, evolutions, covered
            raise

    def forget(self, target: tuple[str, str]) -> None:
        """`target` was dropped or renamed (maybe by another sink process):
        what this connection knew of it is stale."""
        self._known = {k: v for k, v in self._known.items() if k[0] != target}
        self._evolutions.pop(target, None)
        self._covered.pop(target, None)

    def follow(self, target: tuple[str, str], schemas: Sequence[TableSchema]) -> Evolution:
        """The target table made to follow `schemas` (created, or changed as
        their schema changes say: `sinks.schema_changes`); what it has been
        through, for rows of older versions (`sinks.schema_changes.upgrade`)."""
        wanted = frozenset(name for schema in schemas for name in schema.column_names)
        found = self._evolutions.get(target)
        if (
            found is not None
            and wanted <= self._covered[target]
            and not self._follower.pending(schemas)
        ):
            return found
        types, _ = self.describe(target)
        evolution = found or schema_ddl.evolution(self._conn, target)
        covered = set(types) | set(evolution.renamed) | evolution.skipped
        if types and wanted <= covered and not self._follower.pending(schemas):
            self._evolutions[target], self._covered[target] = evolution, frozenset(covered)
            return evolution
        self._conn.execute(DDL_LOCK)
        # another sink process may have just changed it: read both again
        types, _ = self.describe(target)
        evolution = schema_ddl.evolution(self._conn, target)
        if not types and schemas:
            self._create(target, schemas[0])
        qualified = f"{target[0]}.{target[1]}"
        columns = schema_ddl.column_info(self._conn, target)
        steps = self._follower.plan(
            qualified, schemas, columns, evolution, schema_ddl.target_type, self._create_tables
        )
        carry_out(
            steps, schemas, lambda schema, step: schema_ddl.run(self._conn, target, schema, step)
        )
        if steps:  # the staging tables and encoders of the old shape are stale
            self._known = {k: v for k, v in self._known.items() if k[0] != target}
        self._follower.planned(schemas)
        types, _ = self.describe(target)
        covered = set(types) | set(evolution.renamed) | evolution.skipped
        self._evolutions[target], self._covered[target] = evolution, frozenset(covered)
        return evolution

    def get(self, target: tuple[str, str], schemas: Sequence[TableSchema]) -> TargetTable:
        """The table, written through the columns of `schemas` (the schema versions
        of a batch's changes, after `follow`). No schema (a batch that only
        truncates): through every column of the table."""
        wanted = frozenset(name for schema in schemas for name in schema.column_names)
        found = self._known.get((target, wanted))
        if found is not None:
            return found
        types, key = self.describe(target)
        if not types:
            raise TerminalError(
                f"target table {target[0]}.{target[1]} does not exist",
                MISSING_TABLE_FIX,
            )
        if wanted:
            types = {name: kind for name, kind in types.items() if name in wanted}
        if not key and any(not schema.keyless for schema in schemas):  # keyless: `sinks.keyless`
            raise TerminalError(
                f"target table {target[0]}.{target[1]} has no primary key",
                "add the source's primary key to the target table",
            )
        stage = f"cdc_stage_{next(self._stages)}"
        self._conn.execute(
            sql.SQL(
                "CREATE TEMP TABLE {} ON COMMIT DELETE ROWS AS SELECT * FROM {} WITH NO DATA"
            ).format(sql.Identifier(stage), sql.Identifier(*target))
        )
        self._conn.execute(
            sql.SQL("ALTER TABLE {} ADD COLUMN cdc_kind smallint").format(sql.Identifier(stage))
        )
        encoders = {name: text_encoder(kind) for name, kind in types.items()}
        lines = LineBuilder(list(types), list(encoders.values()))
        binary_kinds = [k for k in map(binary_kind, types.values()) if k is not None]
        binary = len(binary_kinds) == len(types)
        row_encoder = (
            RowEncoder(list(types), binary_kinds, binary=True)
            if binary
            else RowEncoder(list(types), [encoder_kind(t) for t in types.values()])
        )
        table = TargetTable(target[0], target[1], types, key, stage, encoders, lines, row_encoder)
        self._known[(target, wanted)] = table
        return table

    def describe(self, target: tuple[str, str]) -> tuple[dict[str, str], tuple[str, ...]]:
        """The table's column types (format_type) and primary key; none: no table."""
        rows = self._conn.execute(
            "SELECT a.attname, format_type(a.atttypid, a.atttypmod),"
            # int2vector casts to an array indexed from 0: -1 marks a non-key column
            " coalesce(array_position(i.indkey::int2[], a.attnum), -1)"
            " FROM pg_attribute a"
            " JOIN pg_class c ON c.oid = a.attrelid"
            " JOIN pg_namespace n ON n.oid = c.relnamespace"
            " LEFT JOIN pg_index i ON i.indrelid = c.oid AND i.indisprimary"
            " WHERE n.nspname = %s AND c.relname = %s AND a.attnum > 0 AND NOT a.attisdropped"
            " AND a.attgenerated = '' ORDER BY a.attnum",
            target,
        ).fetchall()
        types = {name: kind for name, kind, _ in rows}
        key = tuple(name for name, _, pos in sorted(rows, key=lambda r: r[2]) if pos >= 0)
        return types, key

    def _create(self, target: tuple[str, str], schema: TableSchema) -> None:
        if not self._create_tables:
            raise TerminalError(
                f"target table {target[0]}.{target[1]} does not exist",
                MISSING_TABLE_FIX,
            )
        # the DDL `cdc schema` prints, from what the wire schema tells
        for statement in ddl_postgres.render(TableDef.of(schema), target, Notes()):
            if statement.phase == TABLES:
                self._conn.execute(statement.sql.encode())
