"""The `initial` snapshot of the MySQL/MariaDB source (`cdc.mysql.snapshot`):
every selected table's rows as `op: r` messages through Kafka.

Resume contract: after each chunk comes a `SnapshotMark`; once Kafka has it,
the source stores it under `table_key(table)`, so a restarted snapshot skips
the tables done and resumes each other table after its last chunk in Kafka.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pymysql
import structlog

from cdc import metrics
from cdc.mysql import catalog, schema
from cdc.mysql.position import BinlogPosition, SnapshotComplete, SnapshotMark
from cdc.mysql.snapshot import (
    TEXT_VALUES,
    estimate_rows,
    read_table,
    resume_key,
    stored_key,
    wire_converter,
)
from cdc.mysql.zero_dates import ZeroDates
from cdc.parallel import parallel
from cdc.progress import Progress
from cdc.schemas import TableSchema
from cdc.settings import SnapshotSettings
from cdc.snapshot_rows import read_messages
from cdc.source import Checkpoint, StreamItem
from cdc.source_offsets import OffsetStore

log = structlog.get_logger(__name__)

# a snapshot chunk is read, converted and published in pieces of this many rows
PIECE_ROWS = 10_000


def table_key(name: str) -> str:
    """Where a table's snapshot progress is stored in the offsets."""
    return f"snapshot/{name}"


def snapshot_items(
    tables: list[catalog.MyTable],
    start: BinlogPosition,
    offsets: OffsetStore,
    connect: Callable[[dict[Any, Any] | None], pymysql.Connection[Any]],
    snapshot: SnapshotSettings,
    zero_dates: ZeroDates,
) -> Iterator[StreamItem]:
    """The snapshot of what `offsets` does not have done, read after the
    coordinator's position `start`, where streaming starts."""
    log.info("snapshot_started", tables=len(tables), file=start.file, pos=start.pos)
    started_ms = time.time_ns() // 1_000_000
    todo: list[tuple[catalog.MyTable, tuple[Any, ...] | None]] = []
    prepared: dict[str, tuple[TableSchema, list[Any]]] = {}
    for table in tables:
        state = offsets.get(table_key(table.qualified)) or {}
        if state.get("done"):
            continue
        table_schema = schema.table_schema(
            table.schema, table.name, table.columns, table.primary_key, table.defaults
        )
        yield table_schema
        converters = [wire_converter(c, zero_dates, table.qualified) for c in table.columns]
        prepared[table.qualified] = (table_schema, converters)
        todo.append((table, resume_key(table, state["after"]) if state.get("after") else None))
    progress = Progress("snapshot", estimate_rows(lambda: connect(None), [t for t, _ in todo]))
    chunk_rows = snapshot.chunk_rows

    def read(job: tuple[catalog.MyTable, tuple[Any, ...] | None]) -> Iterator[Any]:
        table, after = job
        pieces = read_table(
            lambda: connect(TEXT_VALUES), table, after, chunk_rows, piece_rows=PIECE_ROWS
        )
        for rows, last, done in pieces:
            yield table, rows, last, done

    # tables are read in parallel, each in a consistent snapshot of its own
    for table, rows, last, done in parallel(todo, read, snapshot.parallelism):
        table_schema, converters = prepared[table.qualified]
        source = {
            "connector": "mysql",
            "db": table.schema,
            "file": start.file,
            "pos": start.pos,
        }
        yield read_messages(
            table_schema,
            converters,
            rows,
            started_ms,
            start,
            source,
            "pos",
            time.time_ns() // 1_000_000,
        )
        progress.add(len(rows))
        metrics.SNAPSHOT_ROWS.labels(table=table.qualified).inc(len(rows))
        if last is None and not done:
            continue  # a piece of a chunk: the chunk's last piece records it
        stored_after = stored_key(last) if last else None
        yield Checkpoint(SnapshotMark(table.qualified, stored_after, done))
    yield Checkpoint(SnapshotComplete(start))
    progress.finish()
