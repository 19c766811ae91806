"""Where a direct copy (`snapshot.mode: direct`) records its progress: the
target's `cdc_copy_progress` table, one row per key range of a source table.

A chunk's rows and its progress row are written in one target transaction,
so after a crash the table says exactly which chunks the target holds: a
restarted copy resumes each range after its `last_key` and skips the ranges
marked `done`; no chunk is written twice or lost. The plan (ranges and their
bounds) is written once, before the first chunk, so a resumed copy splits
the tables the same way. Which keys a PostgreSQL target table was loaded
without, and still needs, is in `cdc_copy_deferred` (`cdc.postgres.deferred_keys`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Protocol

import orjson
import psycopg
import pymysql
from psycopg import sql
from psycopg.abc import Buffer

from sinks.mysql.statements import quote

PG_DDL = """
CREATE TABLE IF NOT EXISTS public.cdc_copy_progress (
    pipeline text NOT NULL,
    table_name text NOT NULL,
    range_index integer NOT NULL,
    lower_key bigint,
    upper_key bigint,
    last_key text,
    done boolean NOT NULL DEFAULT false,
    chunks integer NOT NULL DEFAULT 0,
    copied_rows bigint NOT NULL DEFAULT 0,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (pipeline, table_name, range_index)
)
"""
MYSQL_DDL = """
CREATE TABLE IF NOT EXISTS {table} (
    pipeline VARCHAR(63) NOT NULL,
    table_name VARCHAR(255) NOT NULL,
    range_index INT NOT NULL,
    lower_key BIGINT NULL,
    upper_key BIGINT NULL,
    last_key TEXT NULL,
    done BOOLEAN NOT NULL DEFAULT FALSE,
    chunks INT NOT NULL DEFAULT 0,
    copied_rows BIGINT NOT NULL DEFAULT 0,
    updated_at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    PRIMARY KEY (pipeline, table_name, range_index)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4
"""
_COLUMNS = "table_name, range_index, lower_key, upper_key, last_key, done"
_RECORD = (
    "UPDATE {table} SET last_key = %s, done = %s, chunks = chunks + 1,"
    " copied_rows = copied_rows + %s, updated_at = {now}"
    " WHERE pipeline = %s AND table_name = %s AND range_index = %s"
)


@dataclass(frozen=True, slots=True)
class RangeState:
    """One planned key range of a source table and how far the target has it."""

    table: str  # source schema.table
    index: int
    lower: int | None  # inclusive, on a single integer key; None: unbounded
    upper: int | None  # exclusive
    last_key: tuple[Any, ...] | None  # key of the last row copied; None: nothing yet
    done: bool


class CopyProgress(Protocol):
    def load(self) -> list[RangeState] | None:
        """The stored plan with its progress; None before the first plan."""

    def plan(self, ranges: list[RangeState]) -> None:
        """Store the plan (in its own transaction)."""

    def record(self, state: RangeState, rows: int) -> None:
        """A chunk is written: call inside the transaction that wrote its rows."""


def _state(row: tuple[Any, ...]) -> RangeState:
    table, index, lower, upper, last_key, done = row
    last = tuple(orjson.loads(last_key)) if last_key is not None else None
    return RangeState(table, int(index), lower, upper, last, bool(done))


def _params(pipeline: str, state: RangeState, rows: int) -> tuple[Any, ...]:
    last = orjson.dumps(list(state.last_key)).decode() if state.last_key is not None else None
    return (last, state.done, rows, pipeline, state.table, state.index)


def _plan_rows(pipeline: str, ranges: list[RangeState]) -> list[tuple[Any, ...]]:
    return [(pipeline, r.table, r.index, r.lower, r.upper) for r in ranges]


class PgCopyProgress:
    """The progress table of a PostgreSQL target, on the connection the rows go through."""

    def __init__(self, conn: psycopg.Connection[Any], pipeline: str) -> None:
        self._conn = conn
        self._pipeline = pipeline
        with conn.transaction():
            conn.execute(PG_DDL)

    def load(self) -> list[RangeState] | None:
        with self._conn.transaction():
            rows = self._conn.execute(
                f"SELECT {_COLUMNS} FROM public.cdc_copy_progress WHERE pipeline = %s"
                " ORDER BY table_name, range_index",
                (self._pipeline,),
            ).fetchall()
        return [_state(row) for row in rows] or None

    def plan(self, ranges: list[RangeState]) -> None:
        with self._conn.transaction(), self._conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO public.cdc_copy_progress"
                " (pipeline, table_name, range_index, lower_key, upper_key)"
                " VALUES (%s, %s, %s, %s, %s)",
                _plan_rows(self._pipeline, ranges),
            )

    def record(self, state: RangeState, rows: int) -> None:
        query = _RECORD.format(table="public.cdc_copy_progress", now="now()")
        self._conn.execute(query, _params(self._pipeline, state, rows))


class MysqlCopyProgress:
    """The progress table of a MySQL/MariaDB target, in the DSN's database."""

    def __init__(self, conn: pymysql.Connection[Any], database: str, pipeline: str) -> None:
        self._conn = conn
        self._table = f"{quote(database)}.{quote('cdc_copy_progress')}"
        self._pipeline = pipeline
        with conn.cursor() as cur:
            cur.execute(MYSQL_DDL.format(table=self._table))

    def load(self) -> list[RangeState] | None:
        with self._conn.cursor() as cur:
            cur.execute(
                f"SELECT {_COLUMNS} FROM {self._table} WHERE pipeline = %s"
                " ORDER BY table_name, range_index",
                (self._pipeline,),
            )
            rows = cur.fetchall()
        return [_state(tuple(row)) for row in rows] or None

    def plan(self, ranges: list[RangeState]) -> None:
        self._conn.begin()
        with self._conn.cursor() as cur:
            cur.executemany(
                f"INSERT INTO {self._table} (pipeline, table_name, range_index, lower_key,"
                " upper_key) VALUES (%s, %s, %s, %s, %s)",
                _plan_rows(self._pipeline, ranges),
            )
        self._conn.commit()

    def record(self, state: RangeState, rows: int) -> None:
        with self._conn.cursor() as cur:
            query = _RECORD.format(table=self._table, now="CURRENT_TIMESTAMP(6)")
            cur.execute(query, _params(self._pipeline, state, rows))


def copy_chunk(
    conn: psycopg.Connection[Any],
    progress: PgCopyProgress,
    copy_in: sql.Composed,
    blocks: Iterable[Buffer | str],
    state: RangeState,
) -> int:
    """COPY one chunk into a PostgreSQL target and record `state` in the same
    transaction; the number of rows the target took."""
    with conn.transaction():
        if state.done:
            # flushes this range's earlier chunks too, when the session commits
            # asynchronously (`cdc.direct_copy.connect_pg_target`)
            conn.execute("SET LOCAL synchronous_commit = on")
        with conn.cursor() as cur:
            with cur.copy(copy_in) as writing:
                for block in blocks:
                    writing.write(block)
            rows = max(cur.rowcount, 0)
        progress.record(state, rows)
    return rows
