"""Connections of the migration commands to either side of a pipeline.

PostgreSQL sessions carry cdc's application_name and stay read-write, like the
stream's own sessions (`cdc.applied_marks`): a fenced database must still let
`cdc cutover` and `cdc rollback` record and mark what they do.
"""

from __future__ import annotations

from typing import Any

import psycopg
import pymysql
import pymysql.cursors

from cdc.applied_marks import PG_APPLICATION_NAME, PG_READ_WRITE_OPTION
from cdc.secrets import Dsn, MysqlDsn, PostgresDsn

Endpoint = Any  # a source or target section of the settings: .type and .dsn


def pg_connect(dsn: Dsn) -> psycopg.Connection[Any]:
    assert isinstance(dsn, PostgresDsn), "a PostgreSQL side"
    return psycopg.connect(
        dsn.get_secret_value(),
        autocommit=True,
        application_name=PG_APPLICATION_NAME,
        options="-c TimeZone=UTC" + PG_READ_WRITE_OPTION,
    )


def mysql_connect(dsn: Dsn) -> pymysql.Connection[Any]:
    assert isinstance(dsn, MysqlDsn), "a MySQL side"
    return pymysql.connect(
        **dsn.connect_kwargs(),
        charset="utf8mb4",
        autocommit=True,
        cursorclass=pymysql.cursors.DictCursor,
        init_command="SET time_zone = '+00:00'",
    )


def is_postgres(endpoint: Endpoint) -> bool:
    return bool(endpoint.type == "postgres")


def mysql_database(dsn: Dsn) -> str | None:
    """The database a MySQL DSN names (None: none)."""
    assert isinstance(dsn, MysqlDsn), "a MySQL side"
    return dsn.connect_kwargs()["database"]
