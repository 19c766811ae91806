"""Sessions of cdc's migration steps on a MySQL/MariaDB server: autocommit,
utf8mb4, times in UTC."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pymysql
import pymysql.cursors

from cdc.secrets import MysqlDsn


def connect(dsn: MysqlDsn) -> pymysql.Connection[Any]:
    """A session whose cursors give rows as dicts."""
    return pymysql.connect(
        **dsn.connect_kwargs(),
        charset="utf8mb4",
        autocommit=True,
        cursorclass=pymysql.cursors.DictCursor,
        init_command="SET time_zone = '+00:00'",
    )


def connect_plain(dsn: MysqlDsn) -> pymysql.Connection[Any]:
    """A session whose cursors give rows as tuples, values as the server prints them."""
    return pymysql.connect(
        **dsn.connect_kwargs(),
        charset="utf8mb4",
        autocommit=True,
        init_command="SET time_zone = '+00:00'",
    )


class MysqlSession:
    """`cdc.engine.session.Session` over a PyMySQL connection."""

    def __init__(self, conn: pymysql.Connection[Any]) -> None:
        self.conn = conn

    def rows(self, query: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self.conn.cursor(pymysql.cursors.Cursor) as cur:
            cur.execute(query, tuple(params))
            return list(cur.fetchall()) if cur.description else []

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> MysqlSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
