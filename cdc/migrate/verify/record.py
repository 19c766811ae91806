"""The record of finished verify runs, kept on the target in `cdc_verify_runs`, where
`cdc status` and `cdc cutover` read the last result (PostgreSQL: `public.cdc_verify_runs`;
MySQL: in the DSN's database, beside `cdc_offsets`)."""

from __future__ import annotations

from datetime import UTC, datetime

import psycopg
import pymysql

from cdc.migrate.verify.sides import connect
from cdc.settings import PostgresTarget, Settings

PG_DDL = """
CREATE TABLE IF NOT EXISTS public.cdc_verify_runs (
    pipeline text NOT NULL,
    finished_at timestamptz NOT NULL,
    equal boolean NOT NULL,
    report jsonb NOT NULL
)
"""
MYSQL_DDL = """
CREATE TABLE IF NOT EXISTS cdc_verify_runs (
    pipeline VARCHAR(63) NOT NULL,
    finished_at DATETIME(6) NOT NULL,
    `equal` BOOLEAN NOT NULL,
    report JSON NOT NULL,
    KEY (pipeline, finished_at)
)
"""
_LAST = (
    "SELECT finished_at, {equal} FROM {table} WHERE pipeline = %s ORDER BY finished_at DESC LIMIT 1"
)


def record_run(settings: Settings, finished_at: datetime, equal: bool, report: str) -> None:
    """Store one finished run (`report` is its JSON)."""
    target = settings.target
    assert target is not None
    row = (settings.name, finished_at, equal, report)
    if isinstance(target, PostgresTarget):
        with connect(target) as conn:
            assert isinstance(conn, psycopg.Connection)
            conn.execute(PG_DDL)
            conn.execute("INSERT INTO public.cdc_verify_runs VALUES (%s, %s, %s, %s)", row)
        return
    conn = connect(target)
    assert isinstance(conn, pymysql.connections.Connection)
    try:
        with conn.cursor() as cur:
            cur.execute(MYSQL_DDL)
            naive = finished_at.astimezone(UTC).replace(tzinfo=None)
            cur.execute(
                "INSERT INTO cdc_verify_runs VALUES (%s, %s, %s, %s)", (*row[:1], naive, *row[2:])
            )
    finally:
        conn.close()


def last_verify(settings: Settings) -> tuple[datetime, bool] | None:
    """When the pipeline's last verify finished (UTC) and whether it found the sides equal;
    None when it never ran."""
    target = settings.target
    if target is None:
        return None
    if isinstance(target, PostgresTarget):
        with connect(target) as conn:
            assert isinstance(conn, psycopg.Connection)
            exists = conn.execute("SELECT to_regclass('public.cdc_verify_runs')").fetchone()
            if exists is None or exists[0] is None:
                return None
            query = _LAST.format(equal="equal", table="public.cdc_verify_runs")
            row = conn.execute(query.encode(), (settings.name,)).fetchone()
        return (row[0].astimezone(UTC), bool(row[1])) if row else None
    conn = connect(target)
    assert isinstance(conn, pymysql.connections.Connection)
    try:
        with conn.cursor() as cur:
            cur.execute("SHOW TABLES LIKE 'cdc\\_verify\\_runs'")
            if cur.fetchone() is None:
                return None
            cur.execute(_LAST.format(equal="`equal`", table="cdc_verify_runs"), (settings.name,))
            found = cur.fetchone()
    finally:
        conn.close()
    return (found[0].replace(tzinfo=UTC), bool(found[1])) if found else None
