"""COPY from the PostgreSQL source piped into a PostgreSQL target, chunk by
chunk, each chunk one target transaction with its progress row.

The bytes pass through untouched: rows are never decoded in Python, so a
worker spends its time waiting on the two servers (the GIL is released), and
two workers keep two cores busy.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import replace
from typing import Any, Literal

import psycopg
from psycopg import sql
from psycopg.abc import Buffer

from cdc.parallel import parallel
from cdc.postgres.catalog import PgTable
from cdc.postgres.snapshot import KeyRange, import_snapshot, key_where
from sinks.copy_progress import PgCopyProgress, RangeState, copy_chunk

Format = Literal["binary", "text"]
BLOCK_BYTES = 1 << 20
Connect = Callable[[], psycopg.Connection[Any]]


class CopyPipe:
    def __init__(
        self,
        connect_source: Connect,
        connect_target: Connect,
        pipeline: str,
        snapshot_name: str,
        key_types: dict[int, list[str]],
        formats: dict[str, Format],
        chunk_rows: int,
        parallelism: int,
    ) -> None:
        self._connect_source = connect_source
        self._connect_target = connect_target
        self._pipeline = pipeline
        self._snapshot = snapshot_name
        self._key_types = key_types
        self._formats = formats
        self._chunk_rows = chunk_rows
        self._parallelism = parallelism

    def copy(self, jobs: Sequence[tuple[PgTable, RangeState]]) -> Iterator[tuple[RangeState, int]]:
        """(progress, rows) after each chunk the target committed."""
        return parallel(jobs, self._copy_range, self._parallelism)

    def _copy_range(self, job: tuple[PgTable, RangeState]) -> Iterator[tuple[RangeState, int]]:
        table, state = job
        key_range = KeyRange(table, state.index, state.lower, state.upper)
        types = self._key_types[table.oid]
        options = sql.SQL(" (FORMAT binary)" if self._formats[table.qualified] == "binary" else "")
        columns = sql.SQL(", ").join(sql.Identifier(c.name) for c in table.columns)
        ident = sql.Identifier(table.schema, table.name)
        key = sql.SQL(", ").join(sql.Identifier(k) for k in table.primary_key)
        order = sql.SQL(" ORDER BY {}").format(key) if table.primary_key else sql.SQL("")
        copy_in = sql.SQL("COPY {} ({}) FROM STDIN{}").format(ident, columns, options)
        with self._connect_source() as source, self._connect_target() as target:
            import_snapshot(source, self._snapshot)
            progress = PgCopyProgress(target, self._pipeline)
            while not state.done:
                after = state.last_key
                bound = self._chunk_end(source, key_range, after) if table.primary_key else None
                where = key_where(table, types, key_range, after is not None, bound is not None)
                copy_out = sql.SQL("COPY (SELECT {} FROM {}{}{}) TO STDOUT{}").format(
                    columns, ident, where, order, options
                )
                params = (*(after or ()), *(bound or ()))
                end = replace(state, last_key=bound or after, done=bound is None)
                with (
                    source.cursor() as cur,
                    cur.copy(copy_out, params or None) as reading,
                ):
                    rows = copy_chunk(target, progress, copy_in, _blocks(reading), end)
                state = end
                yield state, rows
            source.execute("COMMIT")

    def _chunk_end(
        self, source: psycopg.Connection[Any], key_range: KeyRange, after: Sequence[Any] | None
    ) -> tuple[str, ...] | None:
        """The key (as text) `chunk_rows` rows into the rest of the range; None
        when fewer rows are left (the chunk then takes them all)."""
        table = key_range.table
        types = self._key_types[table.oid]
        # aliased: ORDER BY "id" would otherwise sort by the text output column "id"
        texts = sql.SQL(", ").join(
            sql.SQL("{}::text AS {}").format(sql.Identifier(k), sql.Identifier(f"cdc_key_{i}"))
            for i, k in enumerate(table.primary_key)
        )
        key = sql.SQL(", ").join(sql.Identifier(k) for k in table.primary_key)
        query = sql.SQL("SELECT {} FROM {}{} ORDER BY {} OFFSET {} LIMIT 1").format(
            texts,
            sql.Identifier(table.schema, table.name),
            key_where(table, types, key_range, after is not None),
            key,
            sql.Literal(self._chunk_rows - 1),
        )
        row = source.execute(query, tuple(after) if after else None).fetchone()
        return tuple(row) if row else None


def _blocks(reading: Iterable[Buffer]) -> Iterator[bytearray]:
    """The source's rows (one COPY message each) in blocks of about BLOCK_BYTES:
    fewer, larger writes cost the pipe less per row than one write per row."""
    block = bytearray()
    for data in reading:
        block += data
        if len(block) >= BLOCK_BYTES:
            yield block
            block = bytearray()  # a new one: the writer may still hold the last
    if block:
        yield block
