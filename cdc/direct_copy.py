"""What both sources share in a direct copy (`snapshot.mode: direct`): the
plan kept on the target, and the progress people and Prometheus see.

Consistency contract, as for `snapshot.mode: initial`: the copy reads the
source in the snapshot streaming starts from (PostgreSQL: the slot's exported
snapshot; MariaDB: snapshots taken after the coordinator's binlog position),
and the changes after that point reach the target through Kafka only once
the copy is complete. A copy resumed after a crash reads a newer snapshot;
the stream then replays every change since the original point in order, and
the sink's upsert leaves each row at its latest state.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import psycopg
import structlog

from cdc import metrics
from cdc.postgres import deferred_keys
from cdc.progress import Progress
from cdc.settings import PostgresTarget, Settings
from sinks.postgres.applier import SESSION_OPTIONS
from sinks.postgres.copy_progress import CopyProgress, RangeState

log = structlog.get_logger(__name__)


def connect_pg_target(settings: Settings, async_commit: bool = False) -> psycopg.Connection[Any]:
    """A connection to the PostgreSQL target, in the sink's session settings
    (no triggers or foreign keys fire: tables are copied in any order).

    `async_commit`: for the sessions that write chunks. A commit returns
    before its WAL is flushed; a target crash may then lose the last chunks,
    but each with its progress row (one transaction, and recovery never
    replays part of one), so the restarted copy finds them not copied and
    copies them again. The chunk that completes a range commits synchronously
    (`sinks.postgres.copy_progress.copy_chunk`), which flushes every earlier commit
    too: no range is ever recorded complete on rows a crash could lose, and
    the daemon moves on to the stream only after every range is complete."""
    target = settings.target
    assert isinstance(target, PostgresTarget)
    options = f"{SESSION_OPTIONS} -c synchronous_commit=off" if async_commit else SESSION_OPTIONS
    return psycopg.connect(target.dsn.get_secret_value(), options=options)


def defer_keys(
    settings: Settings, tables: Iterable[tuple[str, str, str]], todo: list[RangeState]
) -> None:
    """Loads bare (`cdc.postgres.deferred_keys`) the target tables the copy
    has not started; `tables`: (source table, target schema, target table)."""
    with connect_pg_target(settings) as target:
        for table, schema, name in tables:
            ranges = [s for s in todo if s.table == table]
            if ranges and not any(s.last_key for s in ranges):
                deferred_keys.drop(target, settings.name, table, schema, name)


def build_keys(settings: Settings) -> None:
    """What the copy left to build (this run's or a killed one's), before
    the stream: the sink's upserts need the keys."""

    def connect() -> psycopg.Connection[Any]:
        return connect_pg_target(settings)

    with connect() as target:
        todo = deferred_keys.pending(target, settings.name)
    deferred_keys.build(connect, settings.name, todo, settings.snapshot.parallelism)


def ranges_to_copy(
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


class CopyMeter:
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
