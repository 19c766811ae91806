"""The direct copy (`snapshot.mode: direct`): a source's tables straight into
the target, through the seams of `cdc.bulk` only (a `SnapshotReader`, a
`BulkWriter`), with the progress people and Prometheus see.

It lives in the core, not with the migration steps of `cdc.migrate`: it is
a source's snapshot, run inside the source's stream between taking its
snapshot and streaming from it, and it needs nothing but the protocols, the
metrics and the progress log; the daemon hands it the reader and the writer.

Consistency contract, as for `snapshot.mode: initial`: the copy reads the
source in the snapshot streaming starts from (PostgreSQL: the slot's exported
snapshot; MariaDB: snapshots taken after the coordinator's binlog position),
and the changes after that point reach the target through Kafka only once
the copy is complete, keys built. A copy resumed after a crash reads a newer
snapshot; the stream then replays every change since the original point in
order, and the sink's upsert leaves each row at its latest state.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import structlog

from cdc import metrics
from cdc.bulk import BulkWriter, CopyProgress, RangeState, SnapshotReader
from cdc.progress import Progress
from cdc.source import IDLE, StreamItem

log = structlog.get_logger(__name__)


def copy_snapshot(reader: SnapshotReader, writer: BulkWriter) -> Iterator[StreamItem]:
    """Copies what the target lacks, yielding the tables' schemas first and
    IDLE after each chunk (the daemon's turn to beat and to stop)."""
    tables = reader.prepare(writer)
    todo = _ranges_to_copy(writer.progress, reader.plan, {t.name for t in tables})
    meter = _CopyMeter(reader.estimate_rows({s.table for s in todo}), len(todo))
    for table in tables:
        # on the schemas topic before the stream's first event, as with the initial snapshot
        yield table.schema
    streamed = [t.schema for t in tables if t.streamed]
    if streamed:
        writer.defer_keys(streamed, todo)
    for chunk in reader.read(todo):
        if chunk.schema is not None:
            writer.write(chunk.schema, chunk.events, chunk.state)
        meter.chunk(chunk.state.table, chunk.rows, chunk.state.done)
        yield IDLE
    if streamed:
        writer.build_keys()
    meter.finish()


def _ranges_to_copy(
    progress: CopyProgress, plan: Callable[[], list[RangeState]], tables: set[str]
) -> list[RangeState]:
    """The ranges of `tables` the target does not have complete yet, planned
    (and the plan stored) on a first run."""
    states = progress.load()
    if states is None:
        states = plan()
        progress.plan(states)
    todo = [s for s in states if not s.done and s.table in tables]
    log.info(
        "direct_copy_started",
        ranges=len(states),
        ranges_done=sum(s.done for s in states),
        ranges_left=len(todo),
        resumed=any(s.done or s.last_key is not None for s in states),
    )
    return todo


class _CopyMeter:
    """Rows, rate and ETA in the log; rows and ranges left in the snapshot metrics."""

    def __init__(self, estimated_rows: int, ranges: int) -> None:
        self._progress = Progress("snapshot", estimated_rows)
        self._chunks = 0
        self._rows = 0
        metrics.SNAPSHOT_RANGES_LEFT.set(ranges)

    def chunk(self, table: str, rows: int, done: bool) -> None:
        self._chunks += 1
        self._rows += rows
        self._progress.add(rows)
        metrics.SNAPSHOT_ROWS.labels(table=table).inc(rows)
        if done:
            metrics.SNAPSHOT_RANGES_LEFT.dec()

    def finish(self) -> None:
        self._progress.finish()
        log.info("direct_copy_done", chunks=self._chunks, rows=self._rows)
