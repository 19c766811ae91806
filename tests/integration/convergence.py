"""Whether a target ended equal to its source: digests of the canonical rows on
both sides (cdc/migrate/verify/canonical.py), and a write load to converge under."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import psycopg
import pymysql

from cdc.migrate.verify.canonical import digest
from cdc.mysql.verify_sql import table_rows as mysql_rows
from cdc.postgres.verify_sql import table_rows as pg_rows
from cdc.secrets import MysqlDsn
from tests.integration.conftest import mysql_connect
from tests.integration.pipeline import wait_until

Digest = tuple[int, str]
NO_SUCH_TABLE = 1146  # ER_NO_SUCH_TABLE


def pg_digest(dsn: str, table: str, columns: Sequence[str]) -> Digest | None:
    """The digest of `schema.table`, or None while the sink has not created it."""
    try:
        return digest(pg_rows(dsn, table, columns))
    except psycopg.errors.UndefinedTable:
        return None


def mysql_digest(dsn: str, table: str, columns: Sequence[str]) -> Digest | None:
    """The digest of `database.table`, or None while the sink has not created it."""
    args = dict(MysqlDsn(dsn).connect_kwargs())
    try:
        return digest(mysql_rows(args, table, columns))
    except pymysql.err.ProgrammingError as error:
        if error.args[0] == NO_SUCH_TABLE:
            return None
        raise


def wait_equal(
    source: Callable[[], Digest | None], target: Callable[[], Digest | None], timeout: float
) -> Digest:
    """Until the target's digest equals the source's; that digest."""
    seen: list[tuple[Digest | None, Digest | None]] = []

    def equal() -> bool:
        seen[:] = [(source(), target())]
        return seen[0][0] is not None and seen[0][0] == seen[0][1]

    if not wait_until(equal, timeout=timeout):
        raise AssertionError(f"the target never equalled the source (source, target): {seen[0]}")
    found = seen[0][0]
    assert found is not None
    return found


class WriteLoad(threading.Thread):
    """Inserts, updates and deletes on `table (id, counter, note)` until stopped:
    ids 1..KEYS, so rows come, change and go again. `engine` picks the SQL dialect."""

    KEYS = 300

    def __init__(self, dsn: str, table: str, engine: str, seed: int = 1) -> None:
        super().__init__(daemon=True)
        self._dsn, self._table, self._engine = dsn, table, engine
        self._rng = random.Random(seed)
        self._halt = threading.Event()
        self.writes = 0
        self.error: BaseException | None = None

    def _statements(self) -> tuple[str, str, str]:
        insert = (
            "INSERT IGNORE INTO {t} VALUES (%s, 0, %s)"
            if self._engine == "mysql"
            else "INSERT INTO {t} VALUES (%s, 0, %s) ON CONFLICT DO NOTHING"
        )
        update = "UPDATE {t} SET counter = counter + 1, note = %s WHERE id = %s"
        delete = "DELETE FROM {t} WHERE id = %s"
        table = self._table
        return insert.format(t=table), update.format(t=table), delete.format(t=table)

    def run(self) -> None:
        insert, update, delete = self._statements()
        try:
            if self._engine == "mysql":
                with mysql_connect(self._dsn) as conn, conn.cursor() as cur:
                    self._loop(cur.execute, insert, update, delete)
            else:
                with psycopg.connect(self._dsn, autocommit=True) as pg:
                    self._loop(pg.execute, insert, update, delete)
        except BaseException as exc:
            self.error = exc

    def _loop(self, execute: Callable[..., Any], insert: str, update: str, delete: str) -> None:
        while not self._halt.is_set():
            key = self._rng.randint(1, self.KEYS)
            roll = self._rng.random()
            if roll < 0.5:
                execute(insert, (key, f"row {key} ü"))
            elif roll < 0.85:
                execute(update, (f"n{self.writes}", key))
            else:
                execute(delete, (key,))
            self.writes += 1
            time.sleep(0.001)

    def stop(self) -> int:
        """Stop writing; how many statements ran."""
        self._halt.set()
        self.join(30)
        if self.error is not None:
            raise self.error
        return self.writes
