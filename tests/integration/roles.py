"""Least-privilege database users, created for one test and dropped after it.

The statements are the ones README.md ("Least-privilege roles") tells operators
to run, so a pipeline that works with these users proves the README right.
Every password is random: a test can search output for it.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from urllib.parse import quote, urlsplit, urlunsplit

import psycopg
from psycopg import sql

from tests.integration.conftest import mysql_connect


def new_password() -> str:
    return f"pw-{secrets.token_hex(12)}"


def with_user(dsn: str, user: str, password: str) -> str:
    """`dsn` with another user and password (the same host, port and database)."""
    parts = urlsplit(dsn)
    host = f"{parts.hostname}:{parts.port}" if parts.port else str(parts.hostname)
    netloc = f"{quote(user, safe='')}:{quote(password, safe='')}@{host}"
    return urlunsplit(parts._replace(netloc=netloc))


def _unique(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(5)}"


def _pg_statements(statements: Sequence[sql.Composable], admin_dsn: str) -> None:
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        for statement in statements:
            conn.execute(statement)


@contextmanager
def _pg_role(
    admin_dsn: str, grants: Sequence[sql.Composable], role: str, password: str
) -> Iterator[str]:
    """A role made by `grants` in the database of `admin_dsn`; its DSN."""
    _pg_statements(grants, admin_dsn)
    try:
        yield with_user(admin_dsn, role, password)
    finally:
        # DROP OWNED revokes its grants (including SET ON PARAMETER) and drops what it made
        _pg_statements(
            [
                sql.SQL("DROP OWNED BY {} CASCADE").format(sql.Identifier(role)),
                sql.SQL("DROP ROLE {}").format(sql.Identifier(role)),
            ],
            admin_dsn,
        )


@contextmanager
def pg_source_role(admin_dsn: str, tables: Sequence[str], publication: str) -> Iterator[str]:
    """A PostgreSQL source login: REPLICATION, SELECT on `tables` (schema.table), and the
    publication created beforehand by the tables' owner (the admin)."""
    role, password = _unique("cdc_source"), new_password()
    ident = sql.Identifier(role)
    names = sql.SQL(", ").join(sql.Identifier(*t.split(".", 1)) for t in tables)
    grants = [
        sql.SQL("CREATE ROLE {} LOGIN REPLICATION PASSWORD {}").format(ident, password),
        sql.SQL("GRANT SELECT ON {} TO {}").format(names, ident),
        sql.SQL("CREATE PUBLICATION {} FOR TABLE {}").format(sql.Identifier(publication), names),
    ]
    with _pg_role(admin_dsn, grants, role, password) as dsn:
        yield dsn


@contextmanager
def pg_target_role(admin_dsn: str, tables: Sequence[str] = ()) -> Iterator[str]:
    """A PostgreSQL target login that may turn off foreign keys in its session and
    create cdc_offsets; with `tables` (schema.table, made beforehand by their owner)
    it may change their rows, without them it creates its own schemas and tables."""
    role, password = _unique("cdc_sink"), new_password()
    ident = sql.Identifier(role)
    grants = [
        sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(ident, password),
        sql.SQL("GRANT SET ON PARAMETER session_replication_role TO {}").format(ident),
        sql.SQL("GRANT USAGE, CREATE ON SCHEMA public TO {}").format(ident),
    ]
    if tables:
        names = sql.SQL(", ").join(sql.Identifier(*t.split(".", 1)) for t in tables)
        grants += [
            sql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(sql.Identifier(schema), ident)
            for schema in sorted({t.split(".", 1)[0] for t in tables})
        ]
        grants.append(
            sql.SQL("GRANT SELECT, INSERT, UPDATE, DELETE, TRUNCATE ON {} TO {}").format(
                names, ident
            )
        )
    else:
        database = sql.Identifier(urlsplit(admin_dsn).path.strip("/"))
        grants.append(sql.SQL("GRANT CREATE ON DATABASE {} TO {}").format(database, ident))
    with _pg_role(admin_dsn, grants, role, password) as dsn:
        yield dsn


@contextmanager
def _mysql_user(admin_dsn: str, prefix: str, grants: Sequence[str]) -> Iterator[str]:
    """A user with `grants` (`GRANT ... ON ...`, completed with `TO user`); its DSN."""
    user, password = _unique(prefix), new_password()
    with mysql_connect(admin_dsn) as conn, conn.cursor() as cur:
        cur.execute("CREATE USER %s@'%%' IDENTIFIED BY %s", (user, password))
        for grant in grants:
            cur.execute(f"{grant} TO %s@'%%'", (user,))
    try:
        yield with_user(admin_dsn, user, password)
    finally:
        with mysql_connect(admin_dsn) as conn, conn.cursor() as cur:
            cur.execute("DROP USER %s@'%%'", (user,))


@contextmanager
def mysql_source_user(admin_dsn: str, database: str) -> Iterator[str]:
    """A MySQL/MariaDB source login: REPLICATION SLAVE, REPLICATION CLIENT, SELECT on
    the database."""
    grants = [
        "GRANT REPLICATION SLAVE, REPLICATION CLIENT ON *.*",
        f"GRANT SELECT ON `{database}`.*",
    ]
    with _mysql_user(admin_dsn, "cdc_source", grants) as dsn:
        yield dsn


@contextmanager
def mysql_target_user(admin_dsn: str, database: str) -> Iterator[str]:
    """A MariaDB target login: rows, cdc_offsets and (create_tables) tables in the
    target database, and marking its own binlog events."""
    grants = [
        f"GRANT SELECT, INSERT, UPDATE, DELETE, CREATE, ALTER ON `{database}`.*",
        # SET SESSION server_id: what the sink writes is marked as applied by cdc
        "GRANT BINLOG REPLAY ON *.*",
    ]
    with _mysql_user(admin_dsn, "cdc_sink", grants) as dsn:
        yield dsn
