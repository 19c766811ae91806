"""The PostgreSQL source: a consistent snapshot, then the logical replication stream.

Resume contract: the slot's `confirmed_flush_lsn` is the resume point of a
new process. It is moved only by `ack` of a commit or heartbeat checkpoint
that Kafka has accepted, so a restart replays every transaction not yet
acknowledged (duplicates are possible and carry the same LSN; losses are
not). A source that reconnects within its process resumes after the last
commit Kafka acknowledged (`_ACKNOWLEDGED`), which the slot's position trails
by up to a status interval: a lost connection repeats nothing.
"""

from __future__ import annotations

import struct
import time
from collections.abc import Iterator
from typing import Any

import psycopg
import structlog

from cdc import metrics
from cdc.applied_marks import PG_APPLICATION_NAME, PG_READ_WRITE_OPTION
from cdc.bulk import DirectCopy
from cdc.captured_tables import add_captured
from cdc.errors import TransientError
from cdc.position import Position
from cdc.postgres import captured_relations, catalog, setup
from cdc.postgres.captured_relations import TableEventSent
from cdc.postgres.copy_protocol import (
    WAL_START,
    XLOG_PAYLOAD,
    PrimaryKeepalive,
    lsn_to_str,
    parse_copy_data,
    standby_status_update,
)
from cdc.postgres.current_row import CurrentRows
from cdc.postgres.direct_copy import PgCopyReader
from cdc.postgres.pgoutput import Decoder
from cdc.postgres.pgoutput_messages import Delete, Insert, Update
from cdc.postgres.position import PgPosition, SnapshotComplete, SnapshotMark, TableCopied
from cdc.postgres.replication import ReplicationConnection
from cdc.postgres.snapshot_stream import range_key, schema_of, take_snapshot
from cdc.postgres.stream_state import StreamState
from cdc.postgres.table_copy import (
    JoiningTables,
    copy_table,
    leave_publication,
    relation_name,
    wal_position,
)
from cdc.postgres.table_events import Name, TableTracker
from cdc.postgres.types import SESSION_OPTIONS, TypeRegistry
from cdc.settings import PostgresSource as PostgresSettings
from cdc.settings import SnapshotSettings
from cdc.source import IDLE, Checkpoint, StreamItem
from cdc.source_offsets import OffsetStore
from cdc.table_selection import check_selection

log = structlog.get_logger(__name__)

HEARTBEAT_PREFIX = "cdc_heartbeat"
STATUS_INTERVAL_S = 1.0
# how soon a table created on the source joins the stream, and a dropped one leaves it
SCAN_TABLES_EVERY_S = 5.0
SLOT_KEY = "postgres/slot"
COMPLETE_KEY = "snapshot/complete"
BATCH_ROWS = 500  # row changes per published item
READ_LIMIT = 1000  # replication messages per read: the status update and heartbeat wait no longer
_XLOG_DATA, _INSERT = ord("w"), ord("I")
_RELATION_ID = struct.Struct("!I")

# The end LSN of the last commit Kafka acknowledged, by (system identifier,
# timeline, slot), for the life of the process: what a source that reconnects
# (walsender terminated, server restarted, network reset) starts the stream at.
# The slot's confirmed_flush_lsn trails it by up to STATUS_INTERVAL_S plus what
# was in flight, and starting there would publish those transactions again: a
# replayed change can fail on the sink (an update of a row a later delete
# removed). Another timeline (a promoted standby) may hold other transactions
# at the same LSNs, so a position is only reused on its own.
_ACKNOWLEDGED: dict[tuple[str, int, str], int] = {}


class PostgresSource:
    def __init__(
        self,
        settings: PostgresSettings,
        snapshot: SnapshotSettings,
        offsets: OffsetStore,
        copy: DirectCopy | None = None,
    ) -> None:
        """`copy`: what takes the snapshot's tables straight into the target
        (snapshot.mode: direct), from the snapshot the stream starts at."""
        self._settings = settings
        self._copy = copy
        self._snapshot = snapshot
        self._offsets = offsets
        self._dsn = settings.dsn.get_secret_value()
        self._slot = settings.slot_name
        self._publication = settings.publication
        self._flush_lsn = 0
        self._resume_key: tuple[str, int, str] | None = None
        self._conn: psycopg.Connection[Any] | None = None
        self._repl: ReplicationConnection | None = None
        # tables joining the stream, by name: (oid, name, since) for the record
        self._joined: dict[str, tuple[int, Name, int]] = {}

    def _connect(self) -> psycopg.Connection[Any]:
        # named and read-write: a cutover's fence spares this session (heartbeats go on)
        return psycopg.connect(
            self._dsn,
            options=SESSION_OPTIONS + PG_READ_WRITE_OPTION,
            application_name=PG_APPLICATION_NAME,
            autocommit=True,
        )

    def _check_slot(self, conn: psycopg.Connection[Any], key: tuple[str, int, str]) -> bool:
        """`setup.check_slot`; a slot still held by this process's previous connection
        (cut by the network without the server noticing yet: it does within
        wal_sender_timeout) is waited for, not taken for a second source."""
        try:
            return setup.check_slot(conn, self._slot, self._offsets.get(SLOT_KEY) is not None)
        except setup.SlotInUseError as exc:
            if key not in _ACKNOWLEDGED:
                raise
            raise TransientError(
                f"replication slot {self._slot!r} is still held by this source's previous"
                " connection; the server lets it go within wal_sender_timeout"
            ) from exc

    # -- the stream -------------------------------------------------------
    def stream(self, start: Position | None = None) -> Iterator[StreamItem]:
        conn = self._conn = self._connect()
        setup.check_server(conn)
        check_selection(self._settings.tables, catalog.table_names(conn)).enforce()
        tables = catalog.select_tables(conn, self._settings.selects)
        setup.check_tables(tables)
        catalog_rows, at = catalog.table_oids(conn), wal_position(conn)
        setup.ensure_publication(conn, self._publication, tables)
        registry = TypeRegistry(conn)
        repl = self._repl = ReplicationConnection(self._dsn)
        key = self._resume_key = (*repl.identify(), self._slot)
        created = None
        if not self._check_slot(conn, key):
            export = self._snapshot.mode != "never"
            created = repl.create_slot(self._slot, export_snapshot=export)
            self._offsets.put(SLOT_KEY, {"slot": self._slot, "lsn": created.consistent_point})
            log.info("slot_created", slot=self._slot, lsn=created.consistent_point)
            _ACKNOWLEDGED.pop(key, None)  # a dropped slot's: nothing of it applies to this one
        elif _ACKNOWLEDGED.get(key, 0) > self._confirmed_flush(conn):
            # a reconnect: Kafka has more than the slot confirmed (a slot moved
            # past it meanwhile, by pg_replication_slot_advance, keeps its own)
            self._flush_lsn = _ACKNOWLEDGED[key]
        snapshot = self._snapshot.mode != "never" and self._offsets.get(COMPLETE_KEY) is None
        # A snapshot still to take reads every table; a table added to
        # source.tables since one finished is copied as it joins the stream.
        # What became of the captured tables while the source was down is
        # owed to the stream as table events (`cdc.postgres.captured_relations`).
        tracker = TableTracker(self._settings.selects, lambda oid: relation_name(conn, oid))
        added = captured_relations.start(
            self._offsets, tracker, catalog_rows, tables, at, self._snapshot.mode != "never",
            self._settings.selects,
        )  # fmt: skip
        joining = [t for t in tables if t.qualified in added and not snapshot]
        for table in joining:
            self._joined[table.qualified] = (table.oid, (table.schema, table.name), at)
        if snapshot:
            exported = created.snapshot_name if created else None
            if self._copy is None:
                # the snapshot's rows name the position their table's stream starts at
                stream_lsn = int((self._offsets.get(SLOT_KEY) or {}).get("lsn", 0))
                yield from take_snapshot(
                    conn, registry, tables, exported, self._offsets, self._snapshot,
                    self._connect, stream_lsn,
                )  # fmt: skip
            else:
                reader = PgCopyReader(
                    conn, registry, tables, exported, self._connect, self._snapshot
                )
                yield from self._copy(reader)
                slot = self._offsets.get(SLOT_KEY) or {}
                yield Checkpoint(SnapshotComplete(int(slot.get("lsn", 0))))
        # the snapshot's schemas are what the stream's first Relation messages follow
        seed = (
            {t.oid: (schema_of(registry, t), t.attnums) for t in tables}
            if snapshot and created is not None
            else {}
        )
        schemas = {t.oid: schema_of(registry, t) for t in tables}
        state = StreamState(
            registry, self._catalog_table, conn.info.dbname, BATCH_ROWS, tracker, seed, schemas,
            CurrentRows(conn),
        )  # fmt: skip
        yield from self._replicate(conn, repl, registry, state, joining)

    def _catalog_table(self, oid: int) -> catalog.PgTable | None:
        assert self._conn is not None
        try:
            return catalog.load_table(self._conn, oid)
        except LookupError:
            return None

    def _replicate(
        self,
        conn: psycopg.Connection[Any],
        repl: ReplicationConnection,
        registry: TypeRegistry,
        state: StreamState,
        joining: list[catalog.PgTable],
    ) -> Iterator[StreamItem]:
        """`joining`: tables to copy as they join the stream (`cdc.postgres.table_copy`),
        and any created on the source that `source.tables` selects, found as it
        streams; the same scan finds captured tables dropped (`cdc.postgres.table_events`)."""

        def keep_alive() -> None:
            repl.send(standby_status_update(self._flush_lsn, self._flush_lsn, self._flush_lsn))

        repl.start(self._slot, self._publication, self._flush_lsn)
        if self._flush_lsn:
            # A start past the slot's position leaves the slot where it was:
            # confirming what Kafka has catches it up at once.
            keep_alive()
            log.info("streaming_started", slot=self._slot, after=lsn_to_str(self._flush_lsn))
        else:
            log.info("streaming_started", slot=self._slot)
        batch, relations, tracker = state.batch, state.relations, state.tracker
        decoder = Decoder()
        interval = self._settings.heartbeat_interval_s
        next_heartbeat = time.monotonic() + interval
        next_status = 0.0
        finder = JoiningTables(conn, self._publication, self._settings.selects, tracker)
        next_scan = time.monotonic() + SCAN_TABLES_EVERY_S

        while True:
            now = time.monotonic()
            if now >= next_scan:
                rows, at = catalog.table_oids(conn), wal_position(conn)
                tracker.observe({oid: (schema, name) for oid, schema, name in rows}, at)
                for table in finder.found(rows, at):
                    self._joined[table.qualified] = (table.oid, (table.schema, table.name), at)
                    yield from state.rejoined(table.oid, (table.schema, table.name))
                    joining.append(table)
                next_scan = now + SCAN_TABLES_EVERY_S
            for oid in state.left:
                leave_publication(conn, self._publication, oid)
            state.left.clear()
            if state.recopy:
                joining += [t for o in state.recopy if (t := self._catalog_table(o)) is not None]
                state.recopy.clear()
            if joining and state.tx is None:  # between transactions
                yield from batch.take()
                waiting = []
                for table in joining:
                    if tracker.holds((table.schema, table.name), table.oid):
                        # the name's former table first: its DROP or RENAME is due
                        waiting.append(table)
                        continue
                    yield from copy_table(
                        self._connect, registry, table, conn.info.dbname, self._flush_lsn,
                        keep_alive,
                    )  # fmt: skip
                joining = waiting
            if now >= next_status:
                repl.send(standby_status_update(self._flush_lsn, self._flush_lsn, self._flush_lsn))
                next_status = now + STATUS_INTERVAL_S
                self._measure_lag(conn)
            if now >= next_heartbeat:
                # A transactional logical message arrives as its own transaction
                # whose Commit moves the slot even when no published table
                # changes. (PostgreSQL 15 does not flush WAL for a
                # non-transactional one, so it would arrive late.)
                conn.execute("SELECT pg_logical_emit_message(true, %s, '')", (HEARTBEAT_PREFIX,))
                next_heartbeat = now + interval
            messages = repl.read(0.5, READ_LIMIT)
            if not messages:
                yield from batch.take()
                yield IDLE
                continue
            for data in messages:
                tx = state.tx
                if tx is not None and data[0] == _XLOG_DATA and data[XLOG_PAYLOAD] == _INSERT:
                    # the bulk of every stream: an Insert straight from the
                    # message's bytes into the batch, with no objects between
                    buf = bytes(data)
                    relation = relations[_RELATION_ID.unpack_from(buf, XLOG_PAYLOAD + 1)[0]]
                    lsn = WAL_START.unpack_from(buf, 1)[0]
                    full = batch.add_insert(relation, buf, XLOG_PAYLOAD + 1, tx, lsn)
                    if full:
                        yield from full
                    continue
                frame = parse_copy_data(data)
                if isinstance(frame, PrimaryKeepalive):
                    yield from batch.take()
                    if state.between_transactions:
                        # the server sent every transaction that ended before `wal_end`
                        yield from state.reached(frame.wal_end)
                    if frame.reply_requested:
                        next_status = 0.0
                    # The server keeps sending keepalives while it decodes WAL of
                    # unpublished tables, so the read above may never time out:
                    # give the caller its turn (acknowledge, stop) here as well.
                    yield IDLE
                    continue
                lsn = frame.wal_start
                message = decoder.decode(frame.payload)
                if state.buffered(message, lsn, frame.payload):
                    continue
                if tx is not None and isinstance(message, (Insert, Update, Delete)):
                    # updates and deletes: into the batch without the dispatch of `control`
                    yield from batch.add(relations[message.relation_id], message, tx, lsn)
                    continue
                yield from state.control(message, lsn)

    def _confirmed_flush(self, conn: psycopg.Connection[Any]) -> int:
        row = conn.execute(
            "SELECT confirmed_flush_lsn - '0/0'::pg_lsn FROM pg_replication_slots"
            " WHERE slot_name = %s",
            (self._slot,),
        ).fetchone()
        return int(row[0]) if row is not None and row[0] is not None else 0

    def _measure_lag(self, conn: psycopg.Connection[Any]) -> None:
        row = conn.execute(
            "SELECT pg_current_wal_lsn() - confirmed_flush_lsn FROM pg_replication_slots"
            " WHERE slot_name = %s",
            (self._slot,),
        ).fetchone()
        if row is not None and row[0] is not None:
            metrics.SOURCE_LAG_BYTES.set(float(row[0]))

    # -- acknowledgements -------------------------------------------------
    def ack(self, position: Position) -> None:
        if isinstance(position, PgPosition):
            if position.commit and position.lsn > self._flush_lsn:
                self._flush_lsn = position.lsn
                if self._resume_key is not None:
                    _ACKNOWLEDGED[self._resume_key] = position.lsn
                if position.ts_ms:
                    metrics.SOURCE_LAG_SECONDS.set(max(0.0, time.time() - position.ts_ms / 1000))
        elif isinstance(position, SnapshotMark):
            after = list(position.after) if position.after is not None else None
            key = range_key(position.table, position.index)
            self._offsets.put(key, {"after": after, "done": position.done})
        elif isinstance(position, SnapshotComplete):
            self._offsets.put(COMPLETE_KEY, {"lsn": position.lsn})
            log.info("snapshot_complete")
        elif isinstance(position, TableCopied):
            joined = self._joined.pop(position.table, None)
            if joined is not None:
                captured_relations.record_joined(self._offsets, *joined)
            add_captured(self._offsets, position.table)
        elif isinstance(position, TableEventSent):
            captured_relations.record_event(self._offsets, position)

    def close(self) -> None:
        if self._repl is not None:
            if self._flush_lsn:
                try:
                    flush = self._flush_lsn
                    self._repl.send(standby_status_update(flush, flush, flush))
                except Exception as exc:
                    log.warning("final_status_update_failed", error=str(exc))
            self._repl.close()
        if self._conn is not None:
            self._conn.close()
