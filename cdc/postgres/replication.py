"""The walsender connection: slot creation and the CopyBoth stream.

psycopg's libpq layer (`psycopg.pq.PGconn`) opened with
`replication=database` speaks the replication protocol. Reads are
non-blocking: wait on the socket with a timeout, `consume_input`, then drain
`get_copy_data`, so an idle stream returns control to the caller instead of
blocking it. Over TLS the stream reads ahead (`tls_read_ahead`), so nothing
may wait inside libpq once it started.
"""

from __future__ import annotations

import select
import time
from dataclasses import dataclass

import psycopg
from psycopg import conninfo, pq
from psycopg.sql import Identifier

from cdc.errors import TransientError
from cdc.postgres import tls_read_ahead
from cdc.postgres.copy_protocol import lsn_to_str, str_to_lsn
from cdc.postgres.types import SESSION_OPTIONS


class ReplicationError(TransientError):
    """The walsender connection failed or ended: a new one resumes after the
    last transaction Kafka acknowledged (in a new process: at the slot's
    confirmed position), so nothing unacknowledged is lost."""


@dataclass(frozen=True, slots=True)
class CreatedSlot:
    name: str
    consistent_point: int  # LSN from which the slot streams
    snapshot_name: str | None  # exported snapshot, valid until the next command


class ReplicationConnection:
    def __init__(self, dsn: str) -> None:
        info = conninfo.make_conninfo(dsn, replication="database", options=SESSION_OPTIONS)
        self._conn = pq.PGconn.connect(info.encode())
        if self._conn.status != pq.ConnStatus.OK:
            message = self._error()
            self._conn.finish()
            raise ReplicationError(f"replication connection failed: {message}")
        self.reads_ahead = False  # TLS read-ahead, turned on by `start`

    def _error(self) -> str:
        return self._conn.get_error_message().strip()

    def _quote(self, name: str) -> str:
        return Identifier(name).as_string(None)

    def _execute(self, command: str) -> pq.abc.PGresult:
        result = self._conn.exec_(command.encode())
        if result.status not in (pq.ExecStatus.COMMAND_OK, pq.ExecStatus.TUPLES_OK):
            verb = command.split(maxsplit=1)[0]
            raise ReplicationError(f"{verb} failed: {self._error()}")
        return result

    def identify(self) -> tuple[str, int]:
        """The server's system identifier and timeline (IDENTIFY_SYSTEM): a
        promoted standby or a restored backup has another timeline, whose WAL
        may differ from what an earlier connection read at the same LSNs."""
        result = self._execute("IDENTIFY_SYSTEM")
        system, timeline = result.get_value(0, 0), result.get_value(0, 1)
        assert system is not None and timeline is not None
        return system.decode(), int(timeline)

    def create_slot(self, slot: str, export_snapshot: bool) -> CreatedSlot:
        """Create a pgoutput slot. With `export_snapshot`, the snapshot stays
        importable (SET TRANSACTION SNAPSHOT) until this connection runs its
        next command, so start streaming only after the readers imported it."""
        mode = "export" if export_snapshot else "nothing"
        result = self._execute(
            f"CREATE_REPLICATION_SLOT {self._quote(slot)} LOGICAL pgoutput (SNAPSHOT '{mode}')"
        )

        def value(column: int) -> str | None:
            raw = result.get_value(0, column)
            return None if raw is None else raw.decode()

        point = value(1)
        assert point is not None
        return CreatedSlot(slot, str_to_lsn(point), value(2))

    def start(self, slot: str, publication: str, start_lsn: int = 0) -> None:
        """Start streaming at `start_lsn` or the slot's confirmed flush position,
        whichever is later (LSN 0: at the latter). The server sends every
        transaction whose commit record starts at or after it, so a commit's
        end LSN skips that transaction and sends the next one."""
        options = (
            f"proto_version '2', publication_names '{self._quote(publication)}', "
            "streaming 'on', messages 'true'"
        )
        position = lsn_to_str(start_lsn)
        command = f"START_REPLICATION SLOT {self._quote(slot)} LOGICAL {position} ({options})"
        self._conn.send_query(command.encode())
        result = self._conn.get_result()
        if result is None or result.status != pq.ExecStatus.COPY_BOTH:
            raise ReplicationError(f"START_REPLICATION failed: {self._error()}")
        self._conn.nonblocking = 1
        self.reads_ahead = tls_read_ahead.enable(self._conn)

    def read(self, timeout: float, limit: int) -> list[memoryview]:
        """The CopyData messages at hand, at most `limit`, waiting up to
        `timeout` seconds for the first; empty when none arrived. One call
        drains what the socket holds (hundreds of messages on a busy
        stream), so the caller's per-message work is a loop, not a call."""
        conn = self._conn
        get = conn.get_copy_data
        messages: list[memoryview] = []
        waited = False
        while len(messages) < limit:
            size, data = get(1)
            if size == 0:
                # Nothing whole in libpq's buffer: take in what arrived. Under
                # TLS one call takes in one record, often a single message, so
                # stop only when a call brought nothing.
                conn.consume_input()
                size, data = get(1)
                if size == 0:
                    if messages or waited:
                        break
                    if not select.select([conn.socket], [], [], timeout)[0]:
                        break
                    waited = True
                    continue
            if size < 0:
                # -1: the server ended the copy; -2: an error. Messages read
                # before it are dropped: none was acknowledged, so they come again.
                self._take_final_result()
                raise ReplicationError(f"replication stream ended: {self._error()}")
            messages.append(data)
        return messages

    def _take_final_result(self) -> None:
        """Read the server's last result (its error) without waiting inside
        libpq, which cannot see records held by TLS read-ahead; a second at most."""
        conn = self._conn
        deadline = time.monotonic() + 1.0
        try:
            while conn.is_busy() and time.monotonic() < deadline:
                conn.consume_input()
                if conn.is_busy():
                    select.select([conn.socket], [], [], 0.05)
            if not conn.is_busy():
                conn.get_result()
        except psycopg.OperationalError:
            pass  # the connection is gone: its error message is already set

    def send(self, message: bytes) -> None:
        if self._conn.put_copy_data(message) != 1:
            raise ReplicationError(f"sending to the server failed: {self._error()}")
        self._conn.flush()

    def close(self) -> None:
        self._conn.finish()
