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

Tables are told apart by oid: a table created again under a captured
table's name joins as a new one, once that table's DROP is out
(`cdc.postgres.table_events`). A table renamed out of `source.tables`
leaves the publication (`leave_publication`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
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
from cdc.postgres.snapshot_stream import schema_of
from cdc.postgres.table_events import Name, TableTracker
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
        tracker: TableTracker,
    ) -> None:
        self._conn = conn
        self._publication = publication
        self._selects = selects
        self._tracker = tracker  # every table in the stream, by oid
        self._refused: set[int] = set()  # told once why it cannot join

    def found(self, catalog_rows: Sequence[tuple[int, str, str]], at: int) -> list[catalog.PgTable]:
        """New selected tables of `catalog_rows` (oid, schema, name), read
        before WAL position `at`, each added to the publication."""
        joining = []
        for oid, schema, name in catalog_rows:
            if self._tracker.active(oid) or oid in self._refused:
                continue
            if not self._selects(schema, name):
                continue
            qualified = f"{schema}.{name}"
            try:
                table = catalog.load_table(self._conn, oid)
            except LookupError:
                continue  # dropped since the scan
            problem = identity_problem(table)
            if problem is not None:
                self._refused.add(oid)
                log.error("table_not_captured", table=qualified, error=problem.message,
                          fix=problem.remedy)  # fmt: skip
                continue
            statement = sql.SQL("ALTER PUBLICATION {} ADD TABLE {}").format(
                sql.Identifier(self._publication), sql.Identifier(schema, name)
            )
            try:
                self._conn.execute(statement)
            except psycopg.errors.DuplicateObject:
                pass  # still in it: a table that left (see `leave_publication`) and is back
            except psycopg.errors.InsufficientPrivilege as exc:
                # least privilege: the publication belongs to the tables' owner
                self._refused.add(oid)
                log.error("table_not_captured", table=qualified, error=str(exc).strip(),
                          fix=f"run {statement.as_string(self._conn)} as the publication's"
                          " owner, then restart cdc run")  # fmt: skip
                continue
            self._tracker.track(oid, (schema, name), at)
            log.info("table_joined", table=qualified)
            joining.append(table)
        return joining


def wal_position(conn: psycopg.Connection[Any]) -> int:
    """Where the server writes WAL now: past every transaction that committed
    before (the insert position: with synchronous_commit off, a commit is
    visible before it is flushed)."""
    row = conn.execute("SELECT pg_current_wal_insert_lsn() - '0/0'::pg_lsn").fetchone()
    assert row is not None
    return int(row[0])


def relation_name(conn: psycopg.Connection[Any], oid: int) -> Name | None:
    """The table's name in the catalog now, None when it is gone."""
    row = conn.execute(
        "SELECT n.nspname, c.relname FROM pg_class c"
        " JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = %s",
        (oid,),
    ).fetchone()
    return None if row is None else (row[0], row[1])


def leave_publication(conn: psycopg.Connection[Any], publication: str, oid: int) -> None:
    """Take a table that left the pipeline out of the publication, so its
    changes stop streaming (the source drops them meanwhile). Best effort:
    the publication may belong to the tables' owner."""
    name = relation_name(conn, oid)
    if name is None:
        return  # gone: out of every publication already
    statement = sql.SQL("ALTER PUBLICATION {} DROP TABLE {}").format(
        sql.Identifier(publication), sql.Identifier(*name)
    )
    try:
        conn.execute(statement)
    except psycopg.errors.UndefinedObject:
        pass  # not in it: the start set the publication to source.tables
    except psycopg.errors.InsufficientPrivilege as exc:
        log.info("table_left_in_publication", table=f"{name[0]}.{name[1]}",
                 reason=str(exc).strip())  # fmt: skip


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
    schema = schema_of(registry, table)
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
