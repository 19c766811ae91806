"""The write fence of a PostgreSQL database.

`ALTER DATABASE ... SET default_transaction_read_only = on` makes every *new*
session read-only; sessions already open keep writing, so the fence also ends
the database's other client sessions (`terminate_sessions`), which rolls back
their open transactions. cdc's own sessions (application_name `cdc`,
read-write on purpose) and WAL senders are spared. Anyone may still
`SET default_transaction_read_only = off`: the fence stops applications, not
an administrator.
"""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg import sql

from cdc.applied_marks import PG_APPLICATION_NAME
from cdc.engine.cutover import FenceResult


def fence(conn: psycopg.Connection[Any], terminate_sessions: bool) -> FenceResult:
    database = conn.info.dbname
    conn.execute(
        sql.SQL("ALTER DATABASE {} SET default_transaction_read_only = on").format(
            sql.Identifier(database)
        )
    )
    ended = 0
    if terminate_sessions:
        row = conn.execute(
            "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid))"
            " FROM pg_stat_activity WHERE datname = current_database()"
            " AND pid <> pg_backend_pid() AND backend_type = 'client backend'"
            " AND application_name IS DISTINCT FROM %s",
            (PG_APPLICATION_NAME,),
        ).fetchone()
        ended = int(row[0]) if row else 0
    return FenceResult(f"database {database}", ended)


def unfence(conn: psycopg.Connection[Any]) -> str:
    database = conn.info.dbname
    conn.execute(
        sql.SQL("ALTER DATABASE {} RESET default_transaction_read_only").format(
            sql.Identifier(database)
        )
    )
    return f"database {database}"


def is_fenced(conn: psycopg.Connection[Any]) -> bool:
    row = conn.execute(
        "SELECT 1 FROM pg_db_role_setting s JOIN pg_database d ON d.oid = s.setdatabase"
        " WHERE d.datname = current_database() AND s.setrole = 0"
        " AND 'default_transaction_read_only=on' = ANY(s.setconfig)"
    ).fetchone()
    return row is not None
