"""The direct copy of the PostgreSQL source (`snapshot.mode: direct`): the
snapshot rows go straight into the target instead of through Kafka.

To a PostgreSQL target, when no transform applies, each chunk is piped
between the servers without decoding a row in Python:
`COPY (SELECT ... ORDER BY key) TO STDOUT (FORMAT binary)` on the source into
`COPY t (...) FROM STDIN (FORMAT binary)` on the target. Binary needs
identical built-in column types on both sides (binary input is
type-specific, and a user-defined type has another OID on the other server);
otherwise the pipe carries COPY text, which the target parses into its own
types. To a MySQL target, or with transforms, rows take the sink's path
(`sinks.direct_writer`).

Tables are copied in parallel by table and by primary-key range (the plan
of the `initial` snapshot), each range in chunks of `chunk_rows` rows: a
chunk ends at the key `chunk_rows - 1` rows past the last one copied, so it
is one bounded index range. Every chunk is one target transaction with its
progress row (`sinks.postgres.copy_progress`); see `cdc.direct_copy` for the
consistency contract. Tables the pipe loads from empty go in without their
keys and indexes, built when the copy is complete (`deferred_keys`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any

import psycopg
import structlog

from cdc.direct_copy import (
    CopyMeter,
    build_keys,
    connect_pg_target,
    defer_keys,
    ranges_to_copy,
)
from cdc.postgres import catalog
from cdc.postgres.catalog import PgTable
from cdc.postgres.copy_pipe import CopyPipe, Format
from cdc.postgres.position import PgPosition
from cdc.postgres.snapshot import KeyRange, ParallelReader, export_snapshot, plan_ranges
from cdc.postgres.types import TypeRegistry
from cdc.schemas import TableSchema
from cdc.settings import Settings
from cdc.snapshot_rows import read_events
from cdc.source import IDLE, StreamItem
from sinks.direct_writer import DirectWriter
from sinks.postgres.copy_progress import RangeState

log = structlog.get_logger(__name__)

FIRST_USER_OID = 16384  # below: built-in types, the same OID and binary form on every server


class PgDirectCopy:
    def __init__(self, settings: Settings, connect: Callable[[], psycopg.Connection[Any]]) -> None:
        self._settings = settings
        self._snapshot = settings.snapshot
        self._connect = connect

    def run(
        self,
        conn: psycopg.Connection[Any],
        registry: TypeRegistry,
        tables: list[PgTable],
        exported: str | None,
    ) -> Iterator[StreamItem]:
        """Copies what the target lacks, yielding IDLE after each chunk (the
        daemon's turn to beat and to stop)."""
        writer = DirectWriter(self._settings)
        try:
            yield from self._copy(conn, registry, tables, exported, writer)
        finally:
            writer.close()

    def _copy(
        self,
        conn: psycopg.Connection[Any],
        registry: TypeRegistry,
        tables: list[PgTable],
        exported: str | None,
        writer: DirectWriter,
    ) -> Iterator[StreamItem]:
        by_name = {t.qualified: t for t in tables}
        snapshot = self._snapshot

        def plan() -> list[RangeState]:
            ranges = plan_ranges(conn, tables, snapshot.parallelism, snapshot.chunk_rows)
            return [
                RangeState(r.table.qualified, r.index, r.lower, r.upper, None, False)
                for r in ranges
            ]

        todo = ranges_to_copy(writer.progress, plan, set(by_name))
        schemas: dict[str, TableSchema] = {}
        key_types: dict[int, list[str]] = {}
        piped: dict[str, Format] = {}  # tables for the pipe, and its COPY format
        for table in tables:
            schema = catalog.table_schema(
                registry, table.schema, table.name, table.columns, table.key, table.not_null
            )
            schemas[table.qualified] = schema
            # on the schemas topic before the stream's first event, as with the initial snapshot
            yield schema
            types = {c.name: registry.info(c.type_oid, c.typmod).name for c in table.columns}
            key_types[table.oid] = [types[k] for k in table.primary_key]
            target_types = None if writer.transforms else writer.prepare_table(schema)
            if target_types is not None:
                same = all(
                    target_types.get(c.name) == types[c.name] and c.type_oid < FIRST_USER_OID
                    for c in table.columns
                )
                piped[table.qualified] = "binary" if same else "text"
            path = f"copy {piped[table.qualified]}" if table.qualified in piped else "rows"
            log.info("direct_copy_table", table=table.qualified, path=path)
        estimate = conn.execute(
            "SELECT coalesce(sum(greatest(reltuples, 0)), 0)::bigint FROM pg_class"
            " WHERE oid = ANY(%s)",
            ([by_name[s.table].oid for s in todo],),
        ).fetchone()
        meter = CopyMeter(estimate[0] if estimate else 0, len(todo))
        if piped:
            bare = [(t.qualified, t.schema, t.name) for t in tables if t.qualified in piped]
            defer_keys(self._settings, bare, todo)
        holder = None
        if exported is None:
            holder, exported = export_snapshot(self._connect)
        try:
            pipe = CopyPipe(
                self._connect,
                lambda: connect_pg_target(self._settings, async_commit=True),
                self._settings.name,
                exported,
                key_types,
                piped,
                snapshot.chunk_rows,
                snapshot.parallelism,
            )
            jobs = [(by_name[s.table], s) for s in todo if s.table in piped]
            for state, rows in pipe.copy(jobs):
                meter.chunk(state.table, rows, state.done)
                yield IDLE
            if piped:
                build_keys(self._settings)
            wire = [(_key_range(by_name[s.table], s), s) for s in todo if s.table not in piped]
            reader = ParallelReader(
                self._connect, exported, key_types, snapshot.chunk_rows, snapshot.parallelism
            )
            states = {(s.table, s.index): s for _, s in wire}
            converters = {
                t.oid: [registry.converter(c.type_oid) for c in t.columns] for t in tables
            }
            source = {"connector": "postgresql", "db": conn.info.dbname}
            started_ms = time.time_ns() // 1_000_000
            after = [(r, _text_key(s.last_key)) for r, s in wire]
            # a chunk is one target transaction with its progress: its pieces wait for it
            pieces: dict[tuple[str, int], list[list[bytes | None]]] = {}
            for chunk in reader.read(after):
                table = chunk.range.table
                at = (table.qualified, chunk.range.index)
                held = pieces.setdefault(at, [])
                held += chunk.rows
                if not chunk.last:
                    continue
                del pieces[at]
                last = states[at]
                state = replace(last, last_key=chunk.after or last.last_key, done=chunk.done)
                states[at] = state
                events = list(
                    read_events(
                        schemas[table.qualified],
                        converters[table.oid],
                        held,
                        started_ms,
                        PgPosition(0),
                        source,
                    )
                )
                writer.write(schemas[table.qualified], events, state)
                meter.chunk(table.qualified, len(events), chunk.done)
                yield IDLE
        finally:
            if holder is not None:
                holder.close()
        meter.finish()


def _key_range(table: PgTable, state: RangeState) -> KeyRange:
    return KeyRange(table, state.index, state.lower, state.upper)


def _text_key(key: tuple[Any, ...] | None) -> tuple[str, ...] | None:
    return None if key is None else tuple(str(v) for v in key)
