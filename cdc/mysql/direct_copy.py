"""The direct copy of the MySQL/MariaDB source (`snapshot.mode: direct`):
the snapshot rows go straight into the target instead of through Kafka.

Tables are read as the `initial` snapshot reads them (in parallel, each in
keyset chunks inside a consistent snapshot taken after the coordinator's
binlog position) and written through the sink's type conversion
(`sinks.direct_writer`): COPY into PostgreSQL, multi-row INSERT into MySQL.
Each chunk is one target transaction with its progress row, so a restarted
copy resumes every table after its last committed chunk; see
`cdc.direct_copy` for the consistency contract.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any

import pymysql

from cdc.direct_copy import CopyMeter, ranges_to_copy
from cdc.mysql import schema
from cdc.mysql.catalog import MyTable
from cdc.mysql.position import BinlogPosition
from cdc.mysql.snapshot import converter, read_table, resume_key, stored_key
from cdc.parallel import parallel
from cdc.settings import MysqlSource, Settings
from cdc.snapshot_rows import read_events
from cdc.source import IDLE, StreamItem
from sinks.copy_progress import RangeState
from sinks.direct_writer import DirectWriter

Chunk = tuple[RangeState, list[tuple[Any, ...]], tuple[Any, ...] | None, bool]


class MysqlDirectCopy:
    def __init__(self, settings: Settings, connect: Callable[[], pymysql.Connection[Any]]) -> None:
        assert isinstance(settings.source, MysqlSource)
        self._settings = settings
        self._zero_dates = settings.source.zero_dates
        self._connect = connect

    def run(
        self,
        tables: list[MyTable],
        start: BinlogPosition,
        estimate_rows: Callable[[list[MyTable]], int],
    ) -> Iterator[StreamItem]:
        """Copies what the target lacks, yielding IDLE after each chunk (the
        daemon's turn to beat and to stop)."""
        writer = DirectWriter(self._settings)
        try:
            yield from self._copy(tables, start, estimate_rows, writer)
        finally:
            writer.close()

    def _copy(
        self,
        tables: list[MyTable],
        start: BinlogPosition,
        estimate_rows: Callable[[list[MyTable]], int],
        writer: DirectWriter,
    ) -> Iterator[StreamItem]:
        by_name = {t.qualified: t for t in tables}

        def plan() -> list[RangeState]:
            # one range per table: MySQL keys are not split arithmetically
            return [RangeState(t.qualified, 0, None, None, None, False) for t in tables]

        todo = ranges_to_copy(writer.progress, plan, set(by_name))
        meter = CopyMeter(estimate_rows([by_name[s.table] for s in todo]), len(todo))
        chunk_rows = self._settings.snapshot.chunk_rows

        def read(state: RangeState) -> Iterator[Chunk]:
            table = by_name[state.table]
            after = resume_key(table, list(state.last_key)) if state.last_key else None
            for rows, last, done in read_table(self._connect, table, after, chunk_rows):
                yield state, rows, last, done

        started_ms = time.time_ns() // 1_000_000
        prepared = {
            t.qualified: (
                schema.table_schema(t.schema, t.name, t.columns, t.primary_key),
                [converter(c, self._zero_dates) for c in t.columns],
            )
            for t in tables
        }
        for table_schema, _ in prepared.values():
            # on the schemas topic before the stream's first event, as with the initial snapshot
            yield table_schema
        states = {s.table: s for s in todo}
        parallelism = self._settings.snapshot.parallelism
        for first, rows, last, done in parallel(todo, read, parallelism):
            table = by_name[first.table]
            table_schema, converters = prepared[table.qualified]
            source = {
                "connector": "mysql",
                "db": table.schema,
                "file": start.file,
                "pos": start.pos,
            }
            events = list(read_events(table_schema, converters, rows, started_ms, start, source))
            key = stored_key(last) if last else states[table.qualified].last_key
            state = states[table.qualified] = replace(first, last_key=key, done=done)
            writer.write(table_schema, events, state)
            meter.chunk(table.qualified, len(events), done)
            yield IDLE
        meter.finish()
