"""Where a direct copy into a MySQL/MariaDB target records its progress: the
`cdc_copy_progress` table in the DSN's database (`sinks.copy_progress`).
Its rows are written in the transactions of the applier's connection, each
with the chunk it records (`cdc.bulk`).
"""

from __future__ import annotations

from typing import Any

import pymysql

from cdc.bulk import RangeState
from cdc.mysql.dialect import qualified
from sinks.copy_progress import COLUMNS, RECORD, plan_rows, record_params, state_of

DDL = """
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


class MysqlCopyProgress:
    """The progress table of a MySQL/MariaDB target, in the DSN's database."""

    def __init__(self, conn: pymysql.Connection[Any], database: str, pipeline: str) -> None:
        self._conn = conn
        self._table = qualified(database, "cdc_copy_progress")
        self._pipeline = pipeline
        with conn.cursor() as cur:
            cur.execute(DDL.format(table=self._table))

    def load(self) -> list[RangeState] | None:
        with self._conn.cursor() as cur:
            cur.execute(
                f"SELECT {COLUMNS} FROM {self._table} WHERE pipeline = %s"
                " ORDER BY table_name, range_index",
                (self._pipeline,),
            )
            rows = cur.fetchall()
        return [state_of(tuple(row)) for row in rows] or None

    def plan(self, ranges: list[RangeState]) -> None:
        self._conn.begin()
        with self._conn.cursor() as cur:
            cur.executemany(
                f"INSERT INTO {self._table} (pipeline, table_name, range_index, lower_key,"
                " upper_key) VALUES (%s, %s, %s, %s, %s)",
                plan_rows(self._pipeline, ranges),
            )
        self._conn.commit()

    def record(self, state: RangeState, rows: int) -> None:
        with self._conn.cursor() as cur:
            query = RECORD.format(table=self._table, now="CURRENT_TIMESTAMP(6)")
            cur.execute(query, record_params(self._pipeline, state, rows))
