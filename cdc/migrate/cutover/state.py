"""The cut-over's progress, kept on the target (`cdc_cutover`): one row per
step done, so that an interrupted `cdc cutover` continues where it stopped and
`cdc rollback` knows what to undo. The table is made by the first step
recorded: reading (`cdc status`) leaves the target as it was."""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime
from typing import Any

import psycopg.errors
import pymysql

from cdc.migrate.connections import is_postgres, mysql_connect, pg_connect
from cdc.settings import Settings

PG_DDL = """
CREATE TABLE IF NOT EXISTS public.cdc_cutover (
    pipeline text NOT NULL,
    step text NOT NULL,
    at timestamptz NOT NULL,
    detail text NOT NULL DEFAULT '',
    PRIMARY KEY (pipeline, step)
)
"""
MYSQL_DDL = """
CREATE TABLE IF NOT EXISTS cdc_cutover (
    pipeline VARCHAR(64) NOT NULL,
    step VARCHAR(64) NOT NULL,
    at DATETIME(6) NOT NULL,
    detail TEXT NOT NULL,
    PRIMARY KEY (pipeline, step)
)
"""
Step = tuple[datetime, str]  # when, what was found or done
_MISSING_TABLE = (psycopg.errors.UndefinedTable, pymysql.err.ProgrammingError)


class CutoverState:
    def __init__(self, settings: Settings) -> None:
        assert settings.target is not None
        self._target = settings.target
        self._pipeline = settings.name
        self._pg = is_postgres(self._target)
        self._table = "public.cdc_cutover" if self._pg else "cdc_cutover"

    def steps(self) -> dict[str, Step]:
        try:
            rows = self._run(
                f"SELECT step, at, detail FROM {self._table} WHERE pipeline = %s",
                (self._pipeline,),
            )
        except _MISSING_TABLE:
            return {}  # no step was ever recorded
        return {step: (_utc(at), detail) for step, at, detail in rows}

    def record(self, step: str, detail: str = "", at: datetime | None = None) -> datetime:
        at = at or datetime.now(UTC)
        stored = at if self._pg else at.replace(tzinfo=None)  # MySQL DATETIME: UTC, naive
        upsert = (
            " ON CONFLICT (pipeline, step) DO UPDATE SET at = EXCLUDED.at, detail = EXCLUDED.detail"
            if self._pg
            else " ON DUPLICATE KEY UPDATE at = VALUES(at), detail = VALUES(detail)"
        )
        self._run(PG_DDL if self._pg else MYSQL_DDL)
        self._run(
            f"INSERT INTO {self._table} (pipeline, step, at, detail) VALUES (%s, %s, %s, %s)"
            + upsert,
            (self._pipeline, step, stored, detail),
        )
        return at

    def clear(self, keep: tuple[str, ...] = ()) -> None:
        with contextlib.suppress(*_MISSING_TABLE):  # no table: nothing to clear
            self._run(
                f"DELETE FROM {self._table} WHERE pipeline = %s"
                + "".join(" AND step <> %s" for _ in keep),
                (self._pipeline, *keep),
            )

    def _run(self, query: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        if self._pg:
            with pg_connect(self._target.dsn) as conn, conn.cursor() as cur:
                cur.execute(query.encode(), params)
                return cur.fetchall() if cur.description else []
        with mysql_connect(self._target.dsn) as conn, conn.cursor() as cur:
            cur.execute(query, params)
            return [tuple(row.values()) for row in cur.fetchall()] if cur.description else []


def _utc(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)
