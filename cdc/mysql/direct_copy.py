"""The direct copy of the MySQL/MariaDB source (`snapshot.mode: direct`):
the snapshot rows go straight into the target instead of through Kafka.

Every table is read in keyset chunks, each worker in a consistent snapshot
taken after the coordinator's binlog position, as the `initial` snapshot
reads. Into a PostgreSQL target, a table whose columns MariaDB can format
as COPY lines (`copy_lines`) is loaded by its workers themselves: split by
key range when its key is a single integer, read in blocks of lines
(`copy_blocks`), into a table without its keys (`cdc.direct_copy.defer_keys`),
with asynchronous commits. Other tables take the sink's type conversion
(`sinks.direct_writer`) on this thread: COPY into PostgreSQL, multi-row
INSERT into MySQL. Each chunk is one target transaction with its progress
row, so a restarted copy resumes every range after its last committed
chunk; see `cdc.direct_copy` for the consistency contract.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import Any

import pymysql
import structlog
from psycopg import sql
from pymysqlreplication.constants import FIELD_TYPE

from cdc.direct_copy import (
    CopyMeter,
    build_keys,
    connect_pg_target,
    defer_keys,
    ranges_to_copy,
)
from cdc.key_split import split_keys
from cdc.mysql import schema
from cdc.mysql.catalog import MyTable
from cdc.mysql.copy_blocks import read_blocks
from cdc.mysql.copy_lines import COPY_OPTIONS, line_sql
from cdc.mysql.position import BinlogPosition
from cdc.mysql.snapshot import (
    Converter,
    converter,
    quote_name,
    read_table,
    resume_key,
    stored_key,
)
from cdc.parallel import parallel
from cdc.schemas import TableSchema
from cdc.settings import MysqlSource, Settings
from cdc.snapshot_rows import read_events
from cdc.source import IDLE, StreamItem
from sinks.direct_writer import DirectWriter
from sinks.postgres.copy_progress import PgCopyProgress, RangeState, copy_chunk

log = structlog.get_logger(__name__)

# a range's progress after a chunk; its rows when this thread is to write them
# (None: the worker wrote them); how many
Chunk = tuple[RangeState, list[tuple[Any, ...]] | None, int]
_INTEGER_TYPES = (
    FIELD_TYPE.TINY,
    FIELD_TYPE.SHORT,
    FIELD_TYPE.INT24,
    FIELD_TYPE.LONG,
    FIELD_TYPE.LONGLONG,
)
_BIGINT_MAX = (1 << 63) - 1
Line = tuple[RangeState, str]  # a range's progress after a chunk; the chunk's COPY data


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
        prepared = {t.qualified: self._prepare(t, writer) for t in tables}
        snapshot = self._settings.snapshot
        chunk_rows = snapshot.chunk_rows

        def plan() -> list[RangeState]:
            ranges = []
            for table in tables:
                parts = snapshot.parallelism * 2 if prepared[table.qualified].blocks else 1
                edges = self._split(table, parts, estimate_rows([table]))
                ranges += [
                    RangeState(table.qualified, i, edges[i], edges[i + 1], None, False)
                    for i in range(len(edges) - 1)
                ]
            return ranges

        todo = ranges_to_copy(writer.progress, plan, set(by_name))
        left = [by_name[name] for name in dict.fromkeys(s.table for s in todo)]
        meter = CopyMeter(estimate_rows(left), len(todo))
        for table in prepared.values():
            # on the schemas topic before the stream's first event, as with the initial snapshot
            yield table.schema
        lines = [(t.qualified, t.schema, t.name) for t in tables if prepared[t.qualified].line]
        if lines:
            defer_keys(self._settings, lines, todo)

        def produce(state: RangeState) -> Iterator[Chunk]:
            table, prep = by_name[state.table], prepared[state.table]
            if prep.line is None:
                after = resume_key(table, list(state.last_key)) if state.last_key else None
                for rows, last, done in read_table(self._connect, table, after, chunk_rows):
                    key = stored_key(last) if last else state.last_key
                    state = replace(state, last_key=key, done=done)
                    yield state, rows, len(rows)
                return
            # a line table's chunks go into the target from this worker, on
            # its own connection: two workers keep both servers busy
            with connect_pg_target(self._settings, async_commit=True) as target:
                progress = PgCopyProgress(target, self._settings.name)
                for copied, data in self._lines(table, prep, state):
                    yield copied, None, copy_chunk(target, progress, prep.copy_in, [data], copied)

        started_ms = time.time_ns() // 1_000_000
        for state, rows, count in parallel(todo, produce, snapshot.parallelism):
            if rows is not None:
                table = prepared[state.table]
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
            meter.chunk(state.table, count, state.done)
            yield IDLE
        if lines:
            build_keys(self._settings)
        meter.finish()

    def _lines(self, table: MyTable, prep: _Table, state: RangeState) -> Iterator[Line]:
        """A line table's chunks as COPY data, with the range's progress after each."""
        assert prep.line is not None
        chunk_rows = self._settings.snapshot.chunk_rows
        if prep.blocks:
            after = state.last_key[0] if state.last_key else None
            bounds = (state.lower, state.upper)
            for blocks, bound, done in read_blocks(
                self._connect, table, prep.line, bounds, after, chunk_rows
            ):
                key = (bound,) if bound is not None else state.last_key
                state = replace(state, last_key=key, done=done)
                yield state, "\n".join(blocks) + "\n" if blocks else ""
            return
        after = resume_key(table, list(state.last_key)) if state.last_key else None
        for rows, last, done in read_table(self._connect, table, after, chunk_rows, prep.line):
            state = replace(state, last_key=stored_key(last) if last else state.last_key, done=done)
            yield state, "".join([row[0] + "\n" for row in rows])

    def _split(self, table: MyTable, parts: int, rows: int) -> list[int | None]:
        """Edges of `parts` ranges of a single integer key (fewer on a small
        table); one range, [None, None], when not worth it."""
        parts = min(parts, rows // self._settings.snapshot.chunk_rows)
        if parts < 2:
            return [None, None]
        column = quote_name(table.primary_key[0])
        with self._connect() as conn, conn.cursor() as cursor:
            cursor.execute(
                f"SELECT MIN({column}) AS low, MAX({column}) AS high"
                f" FROM {quote_name(table.schema)}.{quote_name(table.name)}"
            )
            found = cursor.fetchone()
        low, high = (found["low"], found["high"]) if found else (None, None)
        # the progress table keeps bounds as bigint (BIGINT UNSIGNED may exceed it)
        if low is None or high is None or high > _BIGINT_MAX:
            return [None, None]
        return [None, *split_keys(low, high, parts), None]

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
        copy_in = sql.SQL("COPY {} ({}) FROM STDIN {}").format(
            sql.Identifier(table.schema, table.name),
            sql.SQL(", ").join(sql.Identifier(c.name) for c in table.columns),
            sql.SQL(COPY_OPTIONS),
        )
        key = [c for c in table.columns if c.name in table.primary_key]
        blocks = line is not None and len(key) == 1 and key[0].type in _INTEGER_TYPES
        return _Table(table_schema, converters, line, blocks, copy_in)


@dataclass(frozen=True, slots=True)
class _Table:
    schema: TableSchema
    converters: list[Converter | None]
    line: str | None  # the select list of MariaDB-written COPY lines; None: the row path
    blocks: bool  # lines read in blocks (`copy_blocks`): a single integer key
    copy_in: sql.Composed
