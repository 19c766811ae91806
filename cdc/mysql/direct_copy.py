"""The MySQL/MariaDB source's tables for the direct copy (`snapshot.mode:
direct`, `cdc.direct_copy`): the `SnapshotReader` of `cdc.bulk`.

Every table is read in keyset chunks, each worker in a consistent snapshot
taken after the coordinator's binlog position, as the `initial` snapshot
reads. Into a target that takes COPY streams (PostgreSQL), a table whose
columns MariaDB can format as COPY lines (`copy_lines`) is loaded by its
workers themselves, each on a session of its own: split by key range when
its key is a single integer, read in blocks of lines (`copy_blocks`), into
a table without its keys (`BulkWriter.defer_keys`). Other tables' rows
become `op: r` events for the writer, converted on the caller's thread.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Any

import pymysql
import structlog
from pymysqlreplication.constants import FIELD_TYPE

from cdc.bulk import BulkWriter, Chunk, CopyTable, CopyTarget, RangeState
from cdc.key_split import split_keys
from cdc.mysql import schema
from cdc.mysql.catalog import MyTable
from cdc.mysql.copy_blocks import read_blocks
from cdc.mysql.copy_lines import line_sql
from cdc.mysql.dialect import qualified, quote
from cdc.mysql.position import BinlogPosition
from cdc.mysql.snapshot import (
    Converter,
    converter,
    estimate_rows,
    read_table,
    resume_key,
    stored_key,
)
from cdc.mysql.zero_dates import ZeroDates
from cdc.parallel import parallel
from cdc.schemas import TableSchema
from cdc.settings import SnapshotSettings
from cdc.snapshot_rows import read_events

log = structlog.get_logger(__name__)

# a range's progress after a chunk; its rows when this thread is to convert
# them (None: the worker wrote them); how many
_Read = tuple[RangeState, list[tuple[Any, ...]] | None, int]
_INTEGER_TYPES = (
    FIELD_TYPE.TINY,
    FIELD_TYPE.SHORT,
    FIELD_TYPE.INT24,
    FIELD_TYPE.LONG,
    FIELD_TYPE.LONGLONG,
)
_BIGINT_MAX = (1 << 63) - 1
Line = tuple[RangeState, str]  # a range's progress after a chunk; the chunk's COPY data


class MysqlCopyReader:
    def __init__(
        self,
        tables: list[MyTable],
        start: BinlogPosition,
        connect: Callable[[], pymysql.Connection[Any]],
        snapshot: SnapshotSettings,
        zero_dates: ZeroDates,
    ) -> None:
        """`start`: the coordinator's binlog position, which every worker's
        snapshot follows and streaming starts at."""
        self._tables = tables
        self._by_name = {t.qualified: t for t in tables}
        self._start = start
        self._connect = connect
        self._snapshot = snapshot
        self._zero_dates = zero_dates
        self._prepared: dict[str, _Table] = {}

    def prepare(self, writer: BulkWriter) -> list[CopyTable]:
        self._prepared = {t.qualified: self._prepare(t, writer) for t in self._tables}
        return [CopyTable(t.schema, t.lines is not None) for t in self._prepared.values()]

    def plan(self) -> list[RangeState]:
        ranges = []
        for table in self._tables:
            lines = self._prepared[table.qualified].lines
            parts = self._snapshot.parallelism * 2 if lines and lines.blocks else 1
            edges = self._split(table, parts, estimate_rows(self._connect, [table]))
            ranges += [
                RangeState(table.qualified, i, edges[i], edges[i + 1], None, False)
                for i in range(len(edges) - 1)
            ]
        return ranges

    def estimate_rows(self, tables: Collection[str]) -> int:
        return estimate_rows(self._connect, [self._by_name[name] for name in tables])

    def read(self, todo: Sequence[RangeState]) -> Iterator[Chunk]:
        prepared, start = self._prepared, self._start
        chunk_rows = self._snapshot.chunk_rows

        def produce(state: RangeState) -> Iterator[_Read]:
            table, lines = self._by_name[state.table], prepared[state.table].lines
            if lines is None:
                after = resume_key(table, list(state.last_key)) if state.last_key else None
                for rows, last, done in read_table(self._connect, table, after, chunk_rows):
                    key = stored_key(last) if last else state.last_key
                    state = replace(state, last_key=key, done=done)
                    yield state, rows, len(rows)
                return
            # a line table's chunks go into the target from this worker, on
            # its own session: two workers keep both servers busy
            with lines.target.session("csv") as session:
                for copied, data in self._lines(table, lines, state):
                    yield copied, None, session.copy([data], copied)

        started_ms = time.time_ns() // 1_000_000
        for state, rows, count in parallel(todo, produce, self._snapshot.parallelism):
            if rows is None:
                yield Chunk(state, count)
                continue
            table = prepared[state.table]
            source = {
                "connector": "mysql",
                "db": table.schema.schema,
                "file": start.file,
                "pos": start.pos,
            }
            events = read_events(table.schema, table.converters, rows, started_ms, start, source)
            yield Chunk(state, count, table.schema, list(events))

    def _lines(self, table: MyTable, lines: _Lines, state: RangeState) -> Iterator[Line]:
        """A line table's chunks as COPY data, with the range's progress after each."""
        chunk_rows = self._snapshot.chunk_rows
        if lines.blocks:
            after = state.last_key[0] if state.last_key else None
            bounds = (state.lower, state.upper)
            for blocks, bound, done in read_blocks(
                self._connect, table, lines.select, bounds, after, chunk_rows
            ):
                key = (bound,) if bound is not None else state.last_key
                state = replace(state, last_key=key, done=done)
                yield state, "\n".join(blocks) + "\n" if blocks else ""
            return
        after = resume_key(table, list(state.last_key)) if state.last_key else None
        for rows, last, done in read_table(self._connect, table, after, chunk_rows, lines.select):
            state = replace(state, last_key=stored_key(last) if last else state.last_key, done=done)
            yield state, "".join([row[0] + "\n" for row in rows])

    def _split(self, table: MyTable, parts: int, rows: int) -> list[int | None]:
        """Edges of `parts` ranges of a single integer key (fewer on a small
        table); one range, [None, None], when not worth it."""
        parts = min(parts, rows // self._snapshot.chunk_rows)
        if parts < 2:
            return [None, None]
        column = quote(table.primary_key[0])
        with self._connect() as conn, conn.cursor() as cursor:
            cursor.execute(
                f"SELECT MIN({column}) AS low, MAX({column}) AS high"
                f" FROM {qualified(table.schema, table.name)}"
            )
            found = cursor.fetchone()
        low, high = (found["low"], found["high"]) if found else (None, None)
        # the progress table keeps bounds as bigint (BIGINT UNSIGNED may exceed it)
        if low is None or high is None or high > _BIGINT_MAX:
            return [None, None]
        return [None, *split_keys(low, high, parts), None]

    def _prepare(self, table: MyTable, writer: BulkWriter) -> _Table:
        table_schema = schema.table_schema(
            table.schema, table.name, table.columns, table.primary_key, table.defaults
        )
        converters = [converter(c, self._zero_dates, table.qualified) for c in table.columns]
        target = writer.prepare(table_schema)
        select = None
        if target is not None and table.primary_key:
            select = line_sql(table_schema, target, self._zero_dates)
        log.info(
            "direct_copy_table", table=table.qualified, path="copy lines" if select else "rows"
        )
        if target is None or select is None:
            return _Table(table_schema, converters, None)
        key = [c for c in table.columns if c.name in table.primary_key]
        blocks = len(key) == 1 and key[0].type in _INTEGER_TYPES
        return _Table(table_schema, converters, _Lines(select, target, blocks))


@dataclass(frozen=True, slots=True)
class _Lines:
    """How a table's rows go in as MariaDB-written COPY lines."""

    select: str  # the select list of one line per row
    target: CopyTarget
    blocks: bool  # lines read in blocks (`copy_blocks`): a single integer key


@dataclass(frozen=True, slots=True)
class _Table:
    schema: TableSchema
    converters: list[Converter | None]
    lines: _Lines | None  # None: the row path
