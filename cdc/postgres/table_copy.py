"""A table that joins a running stream: created on the source and selected by
`source.tables` (found while streaming), or added to `source.tables` after
the snapshot (found at start).

It is added to the publication first, so every change from then on streams;
then its rows are read once, in a transaction that starts after that, and
published as snapshot reads (`op: r`) where the stream is. The stream goes on
from there and may replay changes the read already saw: each carries a whole
row (or a delete), so per key the last one wins and the table ends equal.
Rows written before it joined are only in the read, which is why the table
counts as captured (`TableCopied`) only once Kafka has every row of it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import structlog
from psycopg import sql

from cdc.events import EncodedChanges
from cdc.postgres import catalog
from cdc.postgres.changes import RelationState
from cdc.postgres.copy_text import split_row
from cdc.postgres.position import TableCopied
from cdc.postgres.setup import identity_problem
from cdc.postgres.snapshot import PIECE_ROWS
from cdc.postgres.types import TypeRegistry
from cdc.source import Checkpoint, StreamItem

log = structlog.get_logger(__name__)


class JoiningTables:
    """Finds tables that `selects` takes and the stream does not have yet."""

    def __init__(
        self,
        conn: psycopg.Connection[Any],
        publication: str,
        selects: Callable[[str, str], bool],
        streamed: set[str],
    ) -> None:
        self._conn = conn
        self._publication = publication
        self._selects = selects
        self._streamed = streamed  # schema.table of every table in the stream
        self._refused: set[str] = set()  # told once why it cannot join

    def found(self) -> list[catalog.PgTable]:
        """New selected tables, each added to the publication."""
        joining = []
        for oid, schema, name in catalog.table_oids(self._conn):
            qualified = f"{schema}.{name}"
            if qualified in self._streamed or qualified in self._refused:
                continue
            if not self._selects(schema, name):
                continue
            table = catalog.load_table(self._conn, oid)
            problem = identity_problem(table)
            if problem is not None:
                self._refused.add(qualified)
                log.error("table_not_captured", table=qualified, error=problem.message,
                          fix=problem.remedy)  # fmt: skip
                continue
            statement = sql.SQL("ALTER PUBLICATION {} ADD TABLE {}").format(
                sql.Identifier(self._publication), sql.Identifier(schema, name)
            )
            try:
                self._conn.execute(statement)
            except psycopg.errors.InsufficientPrivilege as exc:
                # least privilege: the publication belongs to the tables' owner
                self._refused.add(qualified)
                log.error("table_not_captured", table=qualified, error=str(exc).strip(),
                          fix=f"run {statement.as_string(self._conn)} as the publication's"
                          " owner, then restart cdc run")  # fmt: skip
                continue
            self._streamed.add(qualified)
            log.info("table_joined", table=qualified)
            joining.append(table)
        return joining


def copy_table(
    connect: Callable[[], psycopg.Connection[Any]],
    registry: TypeRegistry,
    table: catalog.PgTable,
    database: str,
    lsn: int,
    keep_alive: Callable[[], None],
) -> Iterator[StreamItem]:
    """The table's schema, its rows as snapshot reads at stream position
    `lsn`, then `TableCopied`. `keep_alive` runs between pieces: the
    replication connection must keep reporting while the rows are read."""
    schema = catalog.table_schema(
        registry, table.schema, table.name, table.columns, table.key, table.not_null,
        table.defaults,
    )  # fmt: skip
    yield schema
    state = RelationState(
        schema=schema,
        names=tuple(c.name for c in table.columns),
        converters=tuple(registry.converter(c.type_oid) for c in table.columns),
        key=schema.key,
        source={"connector": "postgresql", "db": database},
        fingerprint=schema.fingerprint,
    )
    columns = sql.SQL(", ").join(sql.Identifier(c.name) for c in table.columns)
    query = sql.SQL("COPY (SELECT {} FROM {}) TO STDOUT").format(
        columns, sql.Identifier(table.schema, table.name)
    )
    started_ms = time.time_ns() // 1_000_000
    try:
        yield from _read(connect, query, state, lsn, started_ms, keep_alive)
    except psycopg.errors.UndefinedTable:
        log.warning("table_dropped_before_copy", table=table.qualified)
        return
    yield Checkpoint(TableCopied(table.qualified))


def _read(
    connect: Callable[[], psycopg.Connection[Any]],
    query: sql.Composed,
    state: RelationState,
    lsn: int,
    started_ms: int,
    keep_alive: Callable[[], None],
) -> Iterator[EncodedChanges]:
    count = 0
    with connect() as conn:
        conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        rows: list[list[bytes | None]] = []
        with conn.cursor() as cur, cur.copy(query) as copy:
            for data in copy:
                rows.append(split_row(bytes(data)))
                if len(rows) == PIECE_ROWS:
                    yield _piece(state, rows, lsn, started_ms)
                    count += len(rows)
                    rows = []
                    keep_alive()
        if rows:
            yield _piece(state, rows, lsn, started_ms)
            count += len(rows)
        conn.execute("COMMIT")
    log.info("table_copied", table=f"{state.schema.schema}.{state.schema.table}", rows=count)


def _piece(
    state: RelationState, rows: list[list[bytes | None]], lsn: int, started_ms: int
) -> EncodedChanges:
    messages = state.encode_reads(rows, lsn, started_ms, time.time_ns() // 1_000_000)
    return EncodedChanges(state.schema.schema, state.schema.table, state.fingerprint, messages)
