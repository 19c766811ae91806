"""The MySQL/MariaDB source: a lock-free snapshot, then the binlog.

Resume contract: the stored position (`mysql/position` in the offsets
topic) is the last checkpoint Kafka acknowledged: a transaction's end, or the
start of a large transaction plus how many of its rows are already in Kafka.
Reading resumes there, skipping those rows, so nothing is lost and, in
effect, nothing is repeated. One source per pipeline: it holds the
pipeline's lock on the server while it streams (cdc.mysql.lock).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pymysql
import pymysql.cursors
import structlog
from pymysqlreplication import BinLogStreamReader
from pymysqlreplication.event import (
    GtidEvent,
    HeartbeatLogEvent,
    MariadbGtidEvent,
    QueryEvent,
    RotateEvent,
    XidEvent,
)
from pymysqlreplication.row_event import (
    DeleteRowsEvent,
    TableMapEvent,
    UpdateRowsEvent,
    WriteRowsEvent,
)

from cdc.applied_marks import applied_by_sink
from cdc.bulk import DirectCopy
from cdc.captured_tables import note_captured
from cdc.errors import TerminalError
from cdc.events import Op
from cdc.mysql import catalog, setup
from cdc.mysql.direct_copy import MysqlCopyReader
from cdc.mysql.initial_snapshot import snapshot_items, table_key
from cdc.mysql.lock import PipelineLock
from cdc.mysql.position import (
    BinlogPosition,
    SnapshotComplete,
    SnapshotMark,
    format_gtids,
    parse_gtids,
)
from cdc.mysql.row_events import RowMessages
from cdc.mysql.rows import RowDecoders
from cdc.mysql.snapshot import snapshot_position
from cdc.mysql.table_events import TableEvents
from cdc.position import Position
from cdc.settings import MysqlSource as MysqlSettings
from cdc.settings import SnapshotSettings
from cdc.source import IDLE, Checkpoint, StreamItem
from cdc.source_offsets import OffsetStore
from cdc.table_selection import check_selection

log = structlog.get_logger(__name__)

POSITION_KEY = "mysql/position"
START_KEY = "mysql/snapshot_start"
COMPLETE_KEY = "snapshot/complete"
STORE_EVERY_S = 1.0  # the stored position trails by at most this (a crash replays it)
_ROWS = (WriteRowsEvent, UpdateRowsEvent, DeleteRowsEvent)
_OPS = {WriteRowsEvent: Op.CREATE, UpdateRowsEvent: Op.UPDATE, DeleteRowsEvent: Op.DELETE}


class MysqlSource:
    def __init__(
        self,
        settings: MysqlSettings,
        snapshot: SnapshotSettings,
        offsets: OffsetStore,
        pipeline: str,
        copy: DirectCopy | None = None,
    ) -> None:
        """`copy`: what takes the snapshot's tables straight into the target
        (snapshot.mode: direct), from the snapshot the stream starts at."""
        self._copy = copy
        self._settings = settings
        self._snapshot = snapshot
        self._offsets = offsets
        self._connect_args = settings.dsn.connect_kwargs()
        self._pending: BinlogPosition | None = None
        self._stored_at = 0.0
        self._stream: BinLogStreamReader | None = None
        self._lock = PipelineLock(self._connect, pipeline)

    def _connect(self, conv: dict[Any, Any] | None = None) -> pymysql.Connection[Any]:
        args = self._connect_args
        return pymysql.connect(
            conv=conv,
            host=args["host"],
            port=args["port"],
            user=args["user"],
            password=args["password"],
            ssl=args.get("ssl"),
            charset="utf8mb4",
            autocommit=True,
            cursorclass=pymysql.cursors.DictCursor,
            init_command="SET time_zone = '+00:00'",
        )

    # -- the stream -------------------------------------------------------
    def stream(self, start: Position | None = None) -> Iterator[StreamItem]:
        # before anything is read or stored: a second source must not touch the offsets
        self._lock.acquire()
        for item in self._items():
            self._lock.keep()
            yield item

    def _items(self) -> Iterator[StreamItem]:
        with self._connect() as conn, conn.cursor() as cursor:
            setup.check_server(cursor, self._settings.server_id)
            check_selection(self._settings.tables, catalog.table_names(cursor)).enforce()
            tables = catalog.select_tables(cursor, self._settings.selects)
            if not tables:
                raise TerminalError(
                    "no table of the source matches source.tables",
                    "list tables as database.table, or check the include/exclude patterns",
                )
            position: BinlogPosition | None
            stored = self._offsets.get(POSITION_KEY)
            snapshot = self._snapshot.mode != "never" and self._offsets.get(COMPLETE_KEY) is None
            # a snapshot still to take reads every table: only one finished can miss one
            warn = self._snapshot.mode != "never" and not snapshot
            note_captured(self._offsets, [t.qualified for t in tables], warn)
            if stored is not None and not snapshot:
                position = BinlogPosition.from_json(stored)
            elif snapshot:
                first = self._offsets.get(START_KEY)
                position = BinlogPosition.from_json(first) if first else None
            else:
                position = setup.current_position(cursor)
                self._offsets.put(POSITION_KEY, position.to_json())
        if snapshot:
            position = self._snapshot_start(position)
            zero_dates = self._settings.zero_dates
            if self._copy is None:
                yield from snapshot_items(
                    tables, position, self._offsets, self._connect, self._snapshot, zero_dates
                )
            else:
                reader = MysqlCopyReader(
                    tables, position, self._connect, self._snapshot, zero_dates
                )
                yield from self._copy(reader)
                yield Checkpoint(SnapshotComplete(position))
        assert position is not None
        with self._connect() as conn, conn.cursor() as cursor:
            setup.check_not_purged(cursor, position)
        yield from self._replicate(tables, position, seeded=snapshot)

    def _snapshot_start(self, start: BinlogPosition | None) -> BinlogPosition:
        """Where streaming starts: the coordinator's snapshot position, taken on
        a first run before any table is read, so that streaming from it covers
        every worker's snapshot."""
        if start is None:
            with self._connect() as conn, conn.cursor() as cursor:
                start = snapshot_position(cursor)
                cursor.execute("COMMIT")
            self._offsets.put(START_KEY, start.to_json())
        return start

    def _replicate(
        self, tables: list[catalog.MyTable], start: BinlogPosition, seeded: bool
    ) -> Iterator[StreamItem]:
        """`seeded`: this run took the snapshot, whose schemas the stream's
        first versions name their changes from (a column renamed during the
        snapshot stays one); otherwise the tables were read now, maybe after
        DDL still ahead in the binlog."""
        args = self._connect_args
        json_columns = {(t.schema, t.name): t.json_columns for t in tables}
        decoders = RowDecoders(zero_dates=self._settings.zero_dates, json_columns=json_columns)
        captured = TableEvents(
            tables, seeded, self._connect, self._offsets, self._settings.selects, decoders
        )
        by_name, schemas = captured.by_name, captured.schemas  # the hot path's lookups
        row_messages = RowMessages()
        stream = self._stream = BinLogStreamReader(
            connection_settings={
                "host": args["host"],
                "port": args["port"],
                "user": args["user"],
                "password": args["password"],
                "ssl": args.get("ssl"),
            },
            server_id=self._settings.server_id,
            resume_stream=True,
            blocking=True,
            log_file=start.file,
            log_pos=start.pos,
            only_events=[
                TableMapEvent,
                *_ROWS,
                XidEvent,
                QueryEvent,
                RotateEvent,
                MariadbGtidEvent,
                GtidEvent,
                HeartbeatLogEvent,
            ],
            only_schemas=captured.watched,
            # A table map is parsed once per table id, not before every transaction's
            # rows (half of the cost of a one-row transaction): the server gives a
            # table a new id on every ALTER, FLUSH TABLES and restart. A restart also
            # reuses old ids, and the library forgets its maps only at some rotations:
            # the stream forgets them at every one (see RotateEvent below).
            freeze_schema=True,
            slave_heartbeat=1,
            # The library's MariaDB mode always connects by GTID and would
            # ignore log_file/log_pos; plain COM_BINLOG_DUMP by file:pos works
            # on both servers and resumes exactly at a transaction start.
            is_mariadb=False,
        )
        log.info("streaming_started", file=start.file, pos=start.pos, skip=start.skip)
        gtids = parse_gtids(start.gtid)
        tx_start = start  # where the open transaction began (to resume inside it)
        skip = start.skip  # rows of the first transaction already in Kafka
        rows_in_tx = 0
        for event in stream:
            if isinstance(event, HeartbeatLogEvent):
                # A quiet stream brings no more acks, which would leave the
                # last acknowledged position unstored (a crash would replay
                # it): store it once it is due.
                if time.monotonic() - self._stored_at >= STORE_EVERY_S:
                    self._store()
                yield IDLE
                continue
            if isinstance(event, TableMapEvent):
                decoders.table_map(event)
                continue
            if isinstance(event, _ROWS):
                if applied_by_sink(event.packet.server_id):
                    continue  # a cdc sink wrote it (reverse replication): never back again
                decoder = decoders.decoder(event.table_id)
                if (decoder.schema, decoder.table) not in by_name:
                    continue
                known = schemas.get(id(decoder))
                if known is None:
                    known = captured.row_schema(decoder)
                    yield known[0]
                pairs = decoders.decode(event)
                source = {
                    "connector": "mysql",
                    "db": decoder.schema,
                    "server_id": event.packet.server_id,
                    "file": stream.log_file,
                    "pos": tx_start.pos,
                    "gtid": tx_start.gtid,
                }
                # rows of a resumed transaction that Kafka already has
                first = min(max(skip - rows_in_tx, 0), len(pairs))
                rows_in_tx += len(pairs)
                op = _OPS[type(event)]
                ts_ms = event.timestamp * 1000
                now_ms = time.time_ns() // 1_000_000
                yield row_messages(*known, op, pairs, first, ts_ms, tx_start, source, now_ms)
                # a restart inside this transaction resumes after these rows
                yield Checkpoint(
                    BinlogPosition(tx_start.file, tx_start.pos, tx_start.gtid, rows_in_tx)
                )
                continue
            if isinstance(event, MariadbGtidEvent | GtidEvent):
                gtid = event.gtid
                if isinstance(event, MariadbGtidEvent):
                    gtids[gtid.split("-", 1)[0]] = gtid
                continue
            if isinstance(event, RotateEvent):
                # the next file may come from a restarted server, whose table ids name
                # other tables: every table map is read again
                stream.table_map.clear()
                if rows_in_tx == 0:
                    tx_start = BinlogPosition(event.next_binlog, event.position, tx_start.gtid)
                continue
            commit = isinstance(event, XidEvent)
            if isinstance(event, QueryEvent):
                query = event.query.strip()
                if query.upper() == "BEGIN":
                    continue
                database = event.schema.decode() if event.schema else ""
                yield from captured.query(query, database, event.timestamp * 1000, tx_start)
                commit = True  # COMMIT of a non-transactional table, or DDL
            if commit:
                tx_start = BinlogPosition(stream.log_file, stream.log_pos, format_gtids(gtids))
                rows_in_tx = 0
                skip = 0
                yield Checkpoint(tx_start)

    # -- acknowledgements -------------------------------------------------
    def ack(self, position: Position) -> None:
        if isinstance(position, BinlogPosition):
            self._pending = position
            if time.monotonic() - self._stored_at >= STORE_EVERY_S:
                self._store()
        elif isinstance(position, SnapshotMark):
            key = table_key(position.table)
            self._offsets.put(key, {"after": position.after, "done": position.done})
        elif isinstance(position, SnapshotComplete):
            if self._offsets.get(POSITION_KEY) is None:
                self._offsets.put(POSITION_KEY, position.start.to_json())
            self._offsets.put(COMPLETE_KEY, position.start.to_json())
            log.info("snapshot_complete")

    def _store(self) -> None:
        if self._pending is not None:
            self._offsets.put(POSITION_KEY, self._pending.to_json())
            self._pending = None
        self._stored_at = time.monotonic()

    def close(self) -> None:
        try:
            self._store()
            if self._stream is not None:
                self._stream.close()
        finally:
            self._lock.release()
