"""Where a direct copy into a PostgreSQL target records its progress: the
target's `public.cdc_copy_progress` table (`sinks.copy_progress`), written
on the connection, and in the transaction, that writes the chunk it records
(`cdc.bulk`). Which keys a target table was loaded without, and still
needs, is in `cdc_copy_deferred` (`sinks.postgres.deferred_keys`).
"""

from __future__ import annotations

from typing import Any

import psycopg

from cdc.bulk import RangeState
from sinks.copy_progress import COLUMNS, RECORD, plan_rows, record_params, state_of

DDL = """
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


class PgCopyProgress:
    """The progress table of a PostgreSQL target, on the connection the rows go through."""

    def __init__(self, conn: psycopg.Connection[Any], pipeline: str) -> None:
        self._conn = conn
        self._pipeline = pipeline
        with conn.transaction():
            conn.execute(DDL)

    def load(self) -> list[RangeState] | None:
        with self._conn.transaction():
            rows = self._conn.execute(
                f"SELECT {COLUMNS} FROM public.cdc_copy_progress WHERE pipeline = %s"
                " ORDER BY table_name, range_index",
                (self._pipeline,),
            ).fetchall()
        return [state_of(row) for row in rows] or None

    def plan(self, ranges: list[RangeState]) -> None:
        with self._conn.transaction(), self._conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO public.cdc_copy_progress"
                " (pipeline, table_name, range_index, lower_key, upper_key)"
                " VALUES (%s, %s, %s, %s, %s)",
                plan_rows(self._pipeline, ranges),
            )

    def record(self, state: RangeState, rows: int) -> None:
        query = RECORD.format(table="public.cdc_copy_progress", now="now()")
        self._conn.execute(query, record_params(self._pipeline, state, rows))
