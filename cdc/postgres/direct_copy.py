"""The PostgreSQL source's tables for the direct copy (`snapshot.mode:
direct`, `cdc.direct_copy`): the `SnapshotReader` of `cdc.bulk`.

To a target that takes COPY streams (PostgreSQL), when no transform
applies, each chunk is piped between the servers without decoding a row in
Python (`copy_pipe`): `COPY (SELECT ... ORDER BY key) TO STDOUT (FORMAT
binary)` on the source into `COPY t (...) FROM STDIN (FORMAT binary)` on the
target. Binary needs identical built-in column types on both sides (binary
input is type-specific, and a user-defined type has another OID on the
other server); otherwise the pipe carries COPY text, which the target parses
into its own types. Otherwise rows become `op: r` events for the writer.

Tables are read in parallel by table and by primary-key range (the plan of
the `initial` snapshot), each range in chunks of `chunk_rows` rows: a piped
chunk ends at the key `chunk_rows - 1` rows past the last one copied, so it
is one bounded index range. Every reader imports one snapshot: the slot's
exported one on a first run, a new one on a resumed copy.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import replace
from typing import Any

import psycopg
import structlog

from cdc.bulk import BulkWriter, Chunk, CopyFormat, CopyTable, CopyTarget, RangeState
from cdc.postgres import catalog
from cdc.postgres.catalog import PgTable
from cdc.postgres.copy_pipe import CopyPipe
from cdc.postgres.position import PgPosition
from cdc.postgres.snapshot import KeyRange, ParallelReader, export_snapshot, plan_ranges
from cdc.postgres.types import TypeRegistry
from cdc.schemas import TableSchema
from cdc.settings import SnapshotSettings
from cdc.snapshot_rows import read_events

log = structlog.get_logger(__name__)

FIRST_USER_OID = 16384  # below: built-in types, the same OID and binary form on every server


class PgCopyReader:
    def __init__(
        self,
        conn: psycopg.Connection[Any],
        registry: TypeRegistry,
        tables: list[PgTable],
        exported: str | None,
        connect: Callable[[], psycopg.Connection[Any]],
        snapshot: SnapshotSettings,
    ) -> None:
        """`exported`: the slot's snapshot, None when it is gone (a resumed copy)."""
        self._conn = conn
        self._registry = registry
        self._tables = tables
        self._by_name = {t.qualified: t for t in tables}
        self._exported = exported
        self._connect = connect
        self._snapshot = snapshot
        self._schemas: dict[str, TableSchema] = {}
        self._key_types: dict[int, list[str]] = {}
        self._piped: dict[str, tuple[CopyTarget, CopyFormat]] = {}

    def prepare(self, writer: BulkWriter) -> list[CopyTable]:
        out = []
        registry = self._registry
        for table in self._tables:
            schema = catalog.table_schema(
                registry,
                table.schema,
                table.name,
                table.columns,
                table.key,
                table.not_null,
                table.defaults,
                keyless=table.keyless,
            )
            self._schemas[table.qualified] = schema
            types = {c.name: registry.info(c.type_oid, c.typmod).name for c in table.columns}
            self._key_types[table.oid] = [types[k] for k in table.primary_key]
            target = writer.prepare(schema)
            if target is not None:
                same = all(
                    target.types.get(c.name) == types[c.name] and c.type_oid < FIRST_USER_OID
                    for c in table.columns
                )
                self._piped[table.qualified] = (target, "binary" if same else "text")
            piped = self._piped.get(table.qualified)
            path = f"copy {piped[1]}" if piped else "rows"
            log.info("direct_copy_table", table=table.qualified, path=path)
            out.append(CopyTable(schema, piped is not None))
        return out

    def plan(self) -> list[RangeState]:
        snapshot = self._snapshot
        ranges = plan_ranges(self._conn, self._tables, snapshot.parallelism, snapshot.chunk_rows)
        return [
            RangeState(r.table.qualified, r.index, r.lower, r.upper, None, False) for r in ranges
        ]

    def estimate_rows(self, tables: Collection[str]) -> int:
        estimate = self._conn.execute(
            "SELECT coalesce(sum(greatest(reltuples, 0)), 0)::bigint FROM pg_class"
            " WHERE oid = ANY(%s)",
            ([self._by_name[name].oid for name in tables],),
        ).fetchone()
        return int(estimate[0]) if estimate else 0

    def read(self, todo: Sequence[RangeState]) -> Iterator[Chunk]:
        holder, exported = None, self._exported
        if exported is None:
            holder, exported = export_snapshot(self._connect)
        try:
            snapshot = self._snapshot
            pipe = CopyPipe(
                self._connect,
                exported,
                self._key_types,
                self._piped,
                snapshot.chunk_rows,
                snapshot.parallelism,
            )
            jobs = [(self._by_name[s.table], s) for s in todo if s.table in self._piped]
            for state, rows in pipe.copy(jobs):
                yield Chunk(state, rows)
            yield from self._rows([s for s in todo if s.table not in self._piped], exported)
        finally:
            if holder is not None:
                holder.close()

    def _rows(self, todo: Sequence[RangeState], exported: str) -> Iterator[Chunk]:
        """The chunks of ranges whose rows the writer writes, as `op: r` events."""
        by_name, snapshot = self._by_name, self._snapshot
        reader = ParallelReader(
            self._connect, exported, self._key_types, snapshot.chunk_rows, snapshot.parallelism
        )
        states = {(s.table, s.index): s for s in todo}
        converters = {
            t.oid: [self._registry.converter(c.type_oid) for c in t.columns] for t in self._tables
        }
        source = {"connector": "postgresql", "db": self._conn.info.dbname}
        started_ms = time.time_ns() // 1_000_000
        after = [(_key_range(by_name[s.table], s), _text_key(s.last_key)) for s in todo]
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
            schema = self._schemas[table.qualified]
            events = list(
                read_events(schema, converters[table.oid], held, started_ms, PgPosition(0), source)
            )
            yield Chunk(state, len(events), schema, events)


def _key_range(table: PgTable, state: RangeState) -> KeyRange:
    return KeyRange(table, state.index, state.lower, state.upper)


def _text_key(key: tuple[Any, ...] | None) -> tuple[str, ...] | None:
    return None if key is None else tuple(str(v) for v in key)
