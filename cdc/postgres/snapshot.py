"""The consistent initial snapshot of the PostgreSQL source.

Every reader connection imports one snapshot (`SET TRANSACTION SNAPSHOT`):
the slot's exported snapshot on a first run, so that streaming from the
slot's consistent point continues exactly where the snapshot ends. Tables are
read in parallel by table and by primary-key range, each range in keyset
chunks (`WHERE key > last ORDER BY key LIMIT n`) with `COPY ... TO STDOUT`.

After each chunk the source yields a `SnapshotMark`; once Kafka has it, the
source records it, so a restarted snapshot resumes after the last chunk in
Kafka. A resumed snapshot reads a newer snapshot than the slot's consistent
point; the stream then replays every change since that point in order, so
each row still ends at its latest state.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql

from cdc.key_split import split_keys
from cdc.parallel import parallel
from cdc.postgres.catalog import PgTable
from cdc.postgres.copy_text import split_row

INTEGER_TYPES = {20, 21, 23}  # int8, int2, int4: ranges can be split arithmetically


@dataclass(frozen=True, slots=True)
class KeyRange:
    table: PgTable
    index: int
    lower: int | None  # inclusive, on a single integer key
    upper: int | None  # exclusive


# A chunk reaches the caller in pieces of this many rows: a chunk (100,000
# rows by default) on each of the readers and in the queue between them and
# the caller would hold hundreds of MB of raw rows at once.
PIECE_ROWS = 10_000


@dataclass(frozen=True, slots=True)
class Chunk:
    """Raw rows of one piece of a chunk: text fields as COPY sent them. Only
    the chunk's last piece says where the range stands."""

    range: KeyRange
    rows: list[list[bytes | None]]
    last: bool  # the chunk's last piece: `after` and `done` are set
    after: tuple[str, ...] | None  # key of the chunk's last row, as text
    done: bool


def plan_ranges(
    conn: psycopg.Connection[Any], tables: Sequence[PgTable], parallelism: int, chunk_rows: int
) -> list[KeyRange]:
    ranges: list[KeyRange] = []
    for table in tables:
        key_types = [c.type_oid for c in table.columns if c.name in table.primary_key]
        splittable = len(table.primary_key) == 1 and key_types[0] in INTEGER_TYPES
        estimate = conn.execute(
            "SELECT greatest(reltuples, 0)::bigint FROM pg_class WHERE oid = %s", (table.oid,)
        ).fetchone()
        rows = estimate[0] if estimate else 0
        if not splittable or parallelism < 2 or rows < 2 * chunk_rows:
            ranges.append(KeyRange(table, 0, None, None))
            continue
        key = sql.Identifier(table.primary_key[0])
        bounds = conn.execute(
            sql.SQL("SELECT min({k}), max({k}) FROM {s}.{t}").format(
                k=key, s=sql.Identifier(table.schema), t=sql.Identifier(table.name)
            )
        ).fetchone()
        if bounds is None or bounds[0] is None:
            ranges.append(KeyRange(table, 0, None, None))
            continue
        low, high = bounds
        parts = min(parallelism * 2, max(1, rows // chunk_rows))
        edges: list[int | None] = [None, *split_keys(low, high, parts), None]
        for index in range(len(edges) - 1):
            ranges.append(KeyRange(table, index, edges[index], edges[index + 1]))
    return ranges


def chunk_query(
    table: PgTable, key_types: Sequence[str], key_range: KeyRange, resume: bool, limit: int
) -> sql.Composed:
    """COPY of the next chunk of a range; with `resume`, it takes the last key
    read (as text, cast back to the key types) as parameters."""
    columns = sql.SQL(", ").join(sql.Identifier(c.name) for c in table.columns)
    source = sql.SQL("{}.{}").format(sql.Identifier(table.schema), sql.Identifier(table.name))
    if not table.primary_key:
        # no key to page by: the table is one chunk
        return sql.SQL("COPY (SELECT {} FROM {}) TO STDOUT").format(columns, source)
    key = sql.SQL(", ").join(sql.Identifier(k) for k in table.primary_key)
    where = key_where(table, key_types, key_range, resume)
    return sql.SQL("COPY (SELECT {} FROM {}{} ORDER BY {} LIMIT {}) TO STDOUT").format(
        columns, source, where, key, sql.Literal(limit)
    )


def key_where(
    table: PgTable,
    key_types: Sequence[str],
    key_range: KeyRange,
    after: bool,
    through: bool = False,
) -> sql.Composable:
    """` WHERE` the key is in the range, and with `after` above a key, with
    `through` at most a key: each takes the key as text parameters, cast
    back to the key types (`after`'s first)."""
    key = sql.SQL(", ").join(sql.Identifier(k) for k in table.primary_key)
    typed = sql.SQL(", ").join(sql.SQL("CAST(%s AS " + name + ")") for name in key_types)
    conditions: list[sql.Composable] = []
    if after:
        conditions.append(sql.SQL("({}) > ({})").format(key, typed))
    if through:
        conditions.append(sql.SQL("({}) <= ({})").format(key, typed))
    if key_range.lower is not None:
        conditions.append(sql.SQL("{} >= {}").format(key, sql.Literal(key_range.lower)))
    if key_range.upper is not None:
        conditions.append(sql.SQL("{} < {}").format(key, sql.Literal(key_range.upper)))
    return sql.SQL(" WHERE ") + sql.SQL(" AND ").join(conditions) if conditions else sql.SQL("")


def export_snapshot(
    connect: Callable[[], psycopg.Connection[Any]],
) -> tuple[psycopg.Connection[Any], str]:
    """A new snapshot for a resumed copy (the slot's exported one is gone with
    the connection that created the slot): keep the returned connection, whose
    transaction holds it, open while readers import the name."""
    holder = connect()
    holder.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
    row = holder.execute("SELECT pg_export_snapshot()").fetchone()
    assert row is not None
    return holder, str(row[0])


def import_snapshot(conn: psycopg.Connection[Any], name: str) -> None:
    """Start a read-only transaction on `conn` in the exported snapshot `name`."""
    conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
    conn.execute(sql.SQL("SET TRANSACTION SNAPSHOT {}").format(name))


class ParallelReader:
    """Reads key ranges on up to `parallelism` connections that share one
    snapshot. Workers only fetch and split rows; the caller converts and
    publishes."""

    def __init__(
        self,
        connect: Callable[[], psycopg.Connection[Any]],
        snapshot_name: str,
        key_types: dict[int, list[str]],
        chunk_rows: int,
        parallelism: int,
    ) -> None:
        self._connect = connect
        self._snapshot = snapshot_name
        self._key_types = key_types
        self._chunk_rows = chunk_rows
        self._parallelism = parallelism

    def read(self, ranges: Sequence[tuple[KeyRange, tuple[str, ...] | None]]) -> Iterator[Chunk]:
        """Chunks of every range, each range resuming after its given key."""
        return parallel(ranges, self._read_range, self._parallelism)

    def _read_range(self, job: tuple[KeyRange, tuple[str, ...] | None]) -> Iterator[Chunk]:
        key_range, after = job
        table = key_range.table
        names = [c.name for c in table.columns]
        key_order = [names.index(k) for k in table.primary_key]
        types = self._key_types[table.oid]
        with self._connect() as conn:
            import_snapshot(conn, self._snapshot)  # every range reads in the one snapshot
            while True:
                query = chunk_query(table, types, key_range, after is not None, self._chunk_rows)
                rows: list[list[bytes | None]] = []
                row: list[bytes | None] | None = None
                count = 0
                with conn.cursor() as cur, cur.copy(query, after) as copy:
                    for data in copy:
                        row = split_row(bytes(data))
                        rows.append(row)
                        if len(rows) == PIECE_ROWS:
                            count += PIECE_ROWS
                            yield Chunk(key_range, rows, False, None, False)
                            rows = []
                count += len(rows)
                done = not table.primary_key or count < self._chunk_rows
                if row is not None and table.primary_key:
                    after = tuple((row[i] or b"").decode() for i in key_order)
                yield Chunk(key_range, rows, True, None if done else after, done)
                if done:
                    conn.execute("COMMIT")
                    return
