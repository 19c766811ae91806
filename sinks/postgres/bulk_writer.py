"""The direct copy's `BulkWriter` of a PostgreSQL target (`cdc.bulk`): rows
through the sink's path (`sinks.direct_writer`); COPY streams from the
readers' workers, each on a target session of its own, every chunk one
transaction with its progress row (`sinks.postgres.copy_progress`); keys
and indexes of the tables loaded from empty deferred until the copy is
complete (`sinks.postgres.deferred_keys`).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql

from cdc.bulk import CopyData, CopyFormat, CopyProgress, RangeState
from cdc.events import ChangeEvent
from cdc.postgres.target_types import pg_type
from cdc.schemas import TableSchema
from sinks.direct_writer import DirectWriter
from sinks.postgres import deferred_keys
from sinks.postgres.applier import SESSION_OPTIONS, PostgresApplier
from sinks.postgres.copy_progress import PgCopyProgress
from transforms.pipeline import Pipeline

_OPTIONS: dict[CopyFormat, str] = {
    "binary": " (FORMAT binary)",
    "text": "",
    "csv": " (FORMAT csv)",
}
_ZONES = ((" without time zone", ""), (" with time zone", "tz"))


def connect(dsn: str, async_commit: bool = False) -> psycopg.Connection[Any]:
    """A connection to the target, in the sink's session settings (no
    triggers or foreign keys fire: tables are copied in any order).

    `async_commit`: for the sessions that stream chunks. A commit returns
    before its WAL is flushed; a target crash may then lose the last chunks,
    but each with its progress row (one transaction, and recovery never
    replays part of one), so the restarted copy finds them not copied and
    copies them again. The chunk that completes a range commits synchronously
    (`PgCopySession.copy`), which flushes every earlier commit too: no range
    is ever recorded complete on rows a crash could lose, and the daemon
    moves on to the stream only after every range is complete."""
    options = f"{SESSION_OPTIONS} -c synchronous_commit=off" if async_commit else SESSION_OPTIONS
    return psycopg.connect(dsn, options=options)


class PgBulkWriter:
    """The `BulkWriter` of a PostgreSQL target: tables take COPY streams
    unless transforms apply."""

    def __init__(
        self,
        applier: PostgresApplier,
        transforms: Pipeline,
        dsn: str,
        pipeline: str,
        parallelism: int,
    ) -> None:
        """`parallelism`: how many deferred indexes to build at once."""
        self._applier = applier
        self._rows = DirectWriter(applier, applier.copy_progress(pipeline), transforms)
        self._dsn = dsn
        self._pipeline = pipeline
        self._parallelism = parallelism

    @property
    def progress(self) -> CopyProgress:
        return self._rows.progress

    def prepare(self, schema: TableSchema) -> PgCopyTarget | None:
        """The table's COPY target; None when transforms apply: their rows
        take the sink's path, which creates the table."""
        if self._rows.transforms:
            return None
        types = self._applier.prepare_table((schema.schema, schema.table), schema)
        native = frozenset(
            c.name
            for c in schema.columns
            if c.name in types and _short(types[c.name]) == pg_type(c, schema.connector)
        )
        return PgCopyTarget(schema, types, native, self._dsn, self._pipeline)

    def write(self, schema: TableSchema, events: Sequence[ChangeEvent], state: RangeState) -> None:
        self._rows.write(schema, events, state)

    def defer_keys(self, tables: Sequence[TableSchema], todo: Sequence[RangeState]) -> None:
        """Drops (`deferred_keys`) the keys of the target tables the copy has
        not started."""
        with connect(self._dsn) as target:
            for schema in tables:
                name = f"{schema.schema}.{schema.table}"
                ranges = [s for s in todo if s.table == name]
                if ranges and not any(s.last_key for s in ranges):
                    deferred_keys.drop(target, self._pipeline, name, schema.schema, schema.table)

    def build_keys(self) -> None:
        with connect(self._dsn) as target:
            todo = deferred_keys.pending(target, self._pipeline)
        deferred_keys.build(lambda: connect(self._dsn), self._pipeline, todo, self._parallelism)

    def close(self) -> None:
        self._rows.close()


@dataclass(frozen=True, slots=True)
class PgCopyTarget:
    """A target table of the same name as the source table `schema`."""

    schema: TableSchema
    types: Mapping[str, str]  # column -> format_type()
    native: frozenset[str]
    dsn: str
    pipeline: str

    @contextmanager
    def session(self, format: CopyFormat) -> Iterator[PgCopySession]:
        copy_in = sql.SQL("COPY {} ({}) FROM STDIN{}").format(
            sql.Identifier(self.schema.schema, self.schema.table),
            sql.SQL(", ").join(sql.Identifier(name) for name in self.schema.column_names),
            sql.SQL(_OPTIONS[format]),
        )
        with connect(self.dsn, async_commit=True) as conn:
            yield PgCopySession(conn, PgCopyProgress(conn, self.pipeline), copy_in)


class PgCopySession:
    def __init__(
        self, conn: psycopg.Connection[Any], progress: PgCopyProgress, copy_in: sql.Composed
    ) -> None:
        self._conn = conn
        self._progress = progress
        self._copy_in = copy_in

    def copy(self, data: Iterable[CopyData], state: RangeState) -> int:
        conn = self._conn
        with conn.transaction():
            if state.done:
                # flushes this range's earlier chunks too, when the session
                # commits asynchronously (`connect`)
                conn.execute("SET LOCAL synchronous_commit = on")
            with conn.cursor() as cur:
                with cur.copy(self._copy_in) as writing:
                    for block in data:
                        writing.write(block)
                rows = max(cur.rowcount, 0)
            self._progress.record(state, rows)
        return rows


def _short(target_type: str) -> str:
    """format_type()'s name as `pg_type` writes it: timestamp(6) with time
    zone -> timestamptz(6)."""
    for long, short in _ZONES:
        if target_type.endswith(long) and target_type.startswith("timestamp"):
            return target_type.removesuffix(long).replace("timestamp", "timestamp" + short, 1)
    return target_type
