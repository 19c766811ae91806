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
from contextlib import ExitStack
from dataclasses import dataclass, replace
from typing import Any

import pymysql
import structlog
from psycopg import sql

from cdc.direct_copy import CopyMeter, connect_pg_target, ranges_to_copy
from cdc.mysql import schema
from cdc.mysql.catalog import MyTable
from cdc.mysql.copy_lines import line_sql
from cdc.mysql.position import BinlogPosition
from cdc.mysql.snapshot import Converter, converter, read_table, resume_key, stored_key
from cdc.parallel import parallel
from cdc.schemas import TableSchema
from cdc.settings import MysqlSource, Settings
from cdc.snapshot_rows import read_events
from cdc.source import IDLE, StreamItem
from sinks.copy_progress import PgCopyProgress, RangeState, copy_chunk
from sinks.direct_writer import DirectWriter

log = structlog.get_logger(__name__)

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
        prepared = {t.qualified: self._prepare(t, writer) for t in tables}
        for table in prepared.values():
            # on the schemas topic before the stream's first event, as with the initial snapshot
            yield table.schema
        chunk_rows = self._settings.snapshot.chunk_rows

        def read(state: RangeState) -> Iterator[Chunk]:
            table = by_name[state.table]
            after = resume_key(table, list(state.last_key)) if state.last_key else None
            select = prepared[state.table].line
            for rows, last, done in read_table(self._connect, table, after, chunk_rows, select):
                yield state, rows, last, done

        started_ms = time.time_ns() // 1_000_000
        states = {s.table: s for s in todo}
        with ExitStack() as stack:
            # the line tables' COPY goes on a connection of its own: it needs no applier
            lines = any(t.line for t in prepared.values())
            target = stack.enter_context(connect_pg_target(self._settings)) if lines else None
            progress = PgCopyProgress(target, self._settings.name) if target else None
            parallelism = self._settings.snapshot.parallelism
            for first, rows, last, done in parallel(todo, read, parallelism):
                table = prepared[first.table]
                key = stored_key(last) if last else states[first.table].last_key
                state = states[first.table] = replace(first, last_key=key, done=done)
                if target is not None and progress is not None and table.line:
                    data = "".join([row[0] + "\n" for row in rows])
                    copy_chunk(target, progress, table.copy_in, [data], state)
                else:
                    source = {
                        "connector": "mysql",
                        "db": table.schema.schema,
                        "file": start.file,
                        "pos": start.pos,
                    }
                    events = read_events(
                        table.schema, table.converters, rows, started_ms, start, source
                    )
                    writer.write(table.schema, list(events), state)
                meter.chunk(first.table, len(rows), done)
                yield IDLE
        meter.finish()

    def _prepare(self, table: MyTable, writer: DirectWriter) -> _Table:
        table_schema = schema.table_schema(
            table.schema, table.name, table.columns, table.primary_key
        )
        converters = [converter(c, self._zero_dates) for c in table.columns]
        target_types = None if writer.transforms else writer.prepare_table(table_schema)
        line = None
        if target_types is not None and table.primary_key:
            line = line_sql(table_schema, target_types, self._zero_dates)
        log.info("direct_copy_table", table=table.qualified, path="copy lines" if line else "rows")
        copy_in = sql.SQL("COPY {} ({}) FROM STDIN").format(
            sql.Identifier(table.schema, table.name),
            sql.SQL(", ").join(sql.Identifier(c.name) for c in table.columns),
        )
        return _Table(table_schema, converters, line, copy_in)


@dataclass(frozen=True, slots=True)
class _Table:
    schema: TableSchema
    converters: list[Converter | None]
    line: str | None  # the select list of MariaDB-written COPY lines; None: the row path
    copy_in: sql.Composed
