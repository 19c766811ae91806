"""The PostgreSQL source's initial snapshot as stream items: its tables'
schemas, then their rows in key-range chunks (`cdc.postgres.snapshot`),
with the progress marks that let a restarted snapshot resume."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import structlog

from cdc import metrics
from cdc.events import EncodedChanges
from cdc.postgres import catalog
from cdc.postgres.changes import RelationState
from cdc.postgres.position import SnapshotComplete, SnapshotMark
from cdc.postgres.snapshot import KeyRange, ParallelReader, export_snapshot, plan_ranges
from cdc.postgres.types import TypeRegistry
from cdc.progress import Progress
from cdc.schemas import TableSchema
from cdc.settings import SnapshotSettings
from cdc.source import Checkpoint, StreamItem
from cdc.source_offsets import OffsetStore

log = structlog.get_logger(__name__)

PLAN_KEY = "snapshot/plan"


def range_key(table: str, index: int) -> str:
    return f"snapshot/{table}/{index}"


def schema_of(registry: TypeRegistry, table: catalog.PgTable) -> TableSchema:
    return catalog.table_schema(
        registry, table.schema, table.name, table.columns, table.key, table.not_null,
        table.defaults, keyless=table.keyless,
    )  # fmt: skip


def take_snapshot(
    conn: psycopg.Connection[Any],
    registry: TypeRegistry,
    tables: list[catalog.PgTable],
    exported: str | None,
    offsets: OffsetStore,
    settings: SnapshotSettings,
    connect: Callable[[], psycopg.Connection[Any]],
    stream_lsn: int,
) -> Iterator[StreamItem]:
    """The snapshot's schemas, its rows as `op: r` reads, a `SnapshotMark`
    after each chunk and `SnapshotComplete` at the end; `stream_lsn`: where
    the stream starts, which every row names."""
    by_name = {t.qualified: t for t in tables}
    plan = offsets.get(PLAN_KEY)
    if plan is None:
        ranges = plan_ranges(conn, tables, settings.parallelism, settings.chunk_rows)
        plan = [[r.table.qualified, r.index, r.lower, r.upper] for r in ranges]
        offsets.put(PLAN_KEY, plan)
    todo: list[tuple[KeyRange, tuple[str, ...] | None]] = []
    for name, index, lower, upper in plan:
        state = offsets.get(range_key(name, index)) or {}
        if not state.get("done") and name in by_name:
            after = tuple(state["after"]) if state.get("after") else None
            todo.append((KeyRange(by_name[name], index, lower, upper), after))
    source = {"connector": "postgresql", "db": conn.info.dbname}
    # the byte-level encoders of the stream, fed the COPY output's text fields
    encoders: dict[int, RelationState] = {}
    key_types: dict[int, list[str]] = {}
    for table in tables:
        schema = schema_of(registry, table)
        encoders[table.oid] = RelationState(
            schema=schema,
            names=tuple(c.name for c in table.columns),
            converters=tuple(registry.converter(c.type_oid) for c in table.columns),
            key=schema.key,
            source=source,
            fingerprint=schema.fingerprint,
        )
        types = {c.name: registry.info(c.type_oid, c.typmod).name for c in table.columns}
        key_types[table.oid] = [types[k] for k in table.primary_key]
        yield schema
    # A resumed snapshot has lost the slot's exported snapshot: export a new
    # one and keep this transaction open while the readers import it.
    holder = None
    if exported is None:
        holder, exported = export_snapshot(connect)
    log.info("snapshot_started", ranges=len(todo), tables=len(tables))
    estimate = conn.execute(
        "SELECT coalesce(sum(greatest(reltuples, 0)), 0)::bigint FROM pg_class WHERE oid = ANY(%s)",
        ([t.oid for t in tables],),
    ).fetchone()
    progress = Progress("snapshot", estimate[0] if estimate else 0)
    metrics.SNAPSHOT_RANGES_LEFT.set(len(todo))
    started_ms = time.time_ns() // 1_000_000
    reader = ParallelReader(
        connect,
        exported,
        key_types,
        settings.chunk_rows,
        settings.parallelism,
    )
    try:
        for chunk in reader.read(todo):
            table = chunk.range.table
            encoder = encoders[table.oid]
            yield EncodedChanges(
                table.schema,
                table.name,
                encoder.fingerprint,
                encoder.encode_reads(
                    chunk.rows, stream_lsn, started_ms, time.time_ns() // 1_000_000
                ),
            )
            progress.add(len(chunk.rows))
            metrics.SNAPSHOT_ROWS.labels(table=table.qualified).inc(len(chunk.rows))
            if not chunk.last:
                continue  # the chunk's progress is recorded with its last piece
            if chunk.done:
                metrics.SNAPSHOT_RANGES_LEFT.dec()
            yield Checkpoint(
                SnapshotMark(table.qualified, chunk.range.index, chunk.after, chunk.done)
            )
    finally:
        if holder is not None:
            holder.close()
    yield Checkpoint(SnapshotComplete(stream_lsn))
    progress.finish()
