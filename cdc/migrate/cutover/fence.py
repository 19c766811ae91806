"""Write fences: make a database refuse application writes, and lift that.

PostgreSQL: `ALTER DATABASE ... SET default_transaction_read_only = on` makes
every *new* session read-only; sessions already open keep writing, so the
fence also ends the database's other client sessions (`fence.terminate_sessions`),
which rolls back their open transactions. cdc's own sessions (application_name
`cdc`, read-write on purpose) and WAL senders are spared. Anyone may still
`SET default_transaction_read_only = off`: the fence stops applications, not
an administrator.

MySQL/MariaDB: `SET GLOBAL read_only = ON`, and `super_read_only` where the
server has it (MySQL). It is server-wide, not per database, and users with
SUPER (MySQL) or READ ONLY ADMIN (MariaDB 10.11, part of ALL PRIVILEGES) are
not held by read_only: applications must use accounts without them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from psycopg import sql

from cdc.applied_marks import PG_APPLICATION_NAME
from cdc.migrate.connections import Endpoint, is_postgres, mysql_connect, pg_connect


@dataclass(frozen=True)
class FenceResult:
    where: str  # the database (PostgreSQL) or server (MySQL) fenced
    sessions_ended: int


def fence(endpoint: Endpoint, terminate_sessions: bool) -> FenceResult:
    """Stop application writes on `endpoint`'s database; idempotent."""
    if is_postgres(endpoint):
        with pg_connect(endpoint.dsn) as conn:
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
    with mysql_connect(endpoint.dsn) as conn, conn.cursor() as cur:
        cur.execute("SET GLOBAL read_only = ON")
        if _has_super_read_only(cur):
            cur.execute("SET GLOBAL super_read_only = ON")
        return FenceResult(f"server {endpoint.dsn.masked()}", 0)


def unfence(endpoint: Endpoint) -> str:
    """Let applications write again; idempotent. What was unfenced."""
    if is_postgres(endpoint):
        with pg_connect(endpoint.dsn) as conn:
            database = conn.info.dbname
            conn.execute(
                sql.SQL("ALTER DATABASE {} RESET default_transaction_read_only").format(
                    sql.Identifier(database)
                )
            )
            return f"database {database}"
    with mysql_connect(endpoint.dsn) as conn, conn.cursor() as cur:
        if _has_super_read_only(cur):
            cur.execute("SET GLOBAL super_read_only = OFF")
        cur.execute("SET GLOBAL read_only = OFF")
        return f"server {endpoint.dsn.masked()}"


def is_fenced(endpoint: Endpoint) -> bool:
    if is_postgres(endpoint):
        with pg_connect(endpoint.dsn) as conn:
            row = conn.execute(
                "SELECT 1 FROM pg_db_role_setting s JOIN pg_database d ON d.oid = s.setdatabase"
                " WHERE d.datname = current_database() AND s.setrole = 0"
                " AND 'default_transaction_read_only=on' = ANY(s.setconfig)"
            ).fetchone()
            return row is not None
    with mysql_connect(endpoint.dsn) as conn, conn.cursor() as cur:
        cur.execute("SELECT @@GLOBAL.read_only AS r")
        found = cur.fetchone()
        return bool(found and int(found["r"]))


def _has_super_read_only(cur: Any) -> bool:
    cur.execute("SHOW GLOBAL VARIABLES LIKE 'super_read_only'")
    return cur.fetchone() is not None
