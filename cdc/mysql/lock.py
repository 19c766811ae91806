"""One source per pipeline: a named lock on the MySQL/MariaDB server.

Two sources of one pipeline would read with the same `server_id`, and the
server drops one replica connection whenever the other connects: both would
reconnect forever, interleaving their positions in the offsets topic. The
source therefore holds `GET_LOCK('cdc:<pipeline>')` on a connection of its
own for as long as it streams. The server releases a named lock when the
session holding it ends, so a killed process (kill -9, OOM) leaves no stale
lock: the kernel closes its socket and the server ends the session at once.
A host that vanishes without closing the socket holds it until the session's
`wait_timeout` (LOCK_IDLE_TIMEOUT_S), which the holder's pings keep from
expiring while it lives.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from typing import Any

import pymysql

from cdc.errors import TerminalError

# MariaDB and MySQL refuse lock names longer than 64 characters.
MAX_LOCK_NAME = 64
# A restart right after a clean stop may reach the server before it has ended
# the old session: wait this long for the lock before calling it taken.
LOCK_WAIT_S = 5
LOCK_IDLE_TIMEOUT_S = 120
PING_EVERY_S = 10.0


def lock_name(pipeline: str) -> str:
    name = f"cdc:{pipeline}"
    if len(name) <= MAX_LOCK_NAME:
        return name
    return "cdc:" + hashlib.sha256(pipeline.encode()).hexdigest()[: MAX_LOCK_NAME - 4]


class PipelineLock:
    """The pipeline's source lock; `keep()` pings its session so it lives as long
    as the source. A lost session raises pymysql's OperationalError from
    `keep()`, a transient failure: the daemon reconnects and takes the lock again."""

    def __init__(self, connect: Callable[[], pymysql.Connection[Any]], pipeline: str) -> None:
        self._connect = connect
        self._pipeline = pipeline
        self.name = lock_name(pipeline)
        self._conn: pymysql.Connection[Any] | None = None
        self._pinged = 0.0

    def acquire(self) -> None:
        conn = self._connect()
        try:
            with conn.cursor() as cursor:
                cursor.execute(f"SET SESSION wait_timeout = {LOCK_IDLE_TIMEOUT_S}")
                cursor.execute("SELECT GET_LOCK(%s, %s) AS got", (self.name, LOCK_WAIT_S))
                got = cursor.fetchone()["got"]
                holder = None if got == 1 else self._holder(cursor)
        except BaseException:
            conn.close()
            raise
        if got != 1:
            conn.close()
            raise TerminalError(
                f"another source of pipeline {self._pipeline!r} is running: it holds the"
                f" lock {self.name!r} on the MySQL server{holder}",
                "stop the other `cdc run` source of this pipeline (only one may run;"
                " a killed one releases the lock at once), or give this pipeline its own name",
            )
        self._conn = conn
        self._pinged = time.monotonic()

    def _holder(self, cursor: Any) -> str:
        """Which session holds the lock, as far as this user may see it."""
        cursor.execute(
            "SELECT ID AS id, HOST AS host FROM information_schema.PROCESSLIST"
            " WHERE ID = IS_USED_LOCK(%s)",
            (self.name,),
        )
        row = cursor.fetchone()
        return f" (connection {row['id']} from {row['host']})" if row else ""

    def keep(self) -> None:
        if self._conn is not None and time.monotonic() - self._pinged >= PING_EVERY_S:
            self._conn.ping(reconnect=False)
            self._pinged = time.monotonic()

    def release(self) -> None:
        """Ending the session releases the lock."""
        if self._conn is not None:
            conn, self._conn = self._conn, None
            if conn.open:  # a lost session has released the lock already
                conn.close()
