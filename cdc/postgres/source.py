"""The PostgreSQL source: a consistent snapshot, then the logical replication stream.

Resume contract: the slot's `confirmed_flush_lsn` is the resume point. It is
moved only by `ack` of a commit or heartbeat checkpoint that Kafka has
accepted, so a restart replays every transaction not yet acknowledged
(duplicates are possible and carry the same LSN; losses are not).
"""

from __future__ import annotations

import struct
import time
from collections.abc import Iterator, Mapping
from typing import Any

import psycopg
import structlog

from cdc import metrics
from cdc.applied_marks import PG_APPLICATION_NAME, PG_READ_WRITE_OPTION
from cdc.bulk import DirectCopy
from cdc.captured_tables import add_captured, added_since, note_captured
from cdc.events import EncodedChanges
from cdc.position import Position
from cdc.postgres import catalog, setup
from cdc.postgres.changes import RelationState
from cdc.postgres.copy_protocol import (
    WAL_START,
    XLOG_PAYLOAD,
    PrimaryKeepalive,
    parse_copy_data,
    standby_status_update,
)
from cdc.postgres.direct_copy import PgCopyReader
from cdc.postgres.pgoutput import Decoder
from cdc.postgres.pgoutput_messages import Delete, Insert, Update
from cdc.postgres.position import PgPosition, SnapshotComplete, SnapshotMark, TableCopied
from cdc.postgres.replication import ReplicationConnection
from cdc.postgres.snapshot import KeyRange, ParallelReader, export_snapshot, plan_ranges
from cdc.postgres.stream_state import StreamState
from cdc.postgres.table_copy import JoiningTables, copy_table
from cdc.postgres.types import SESSION_OPTIONS, TypeRegistry
from cdc.progress import Progress
from cdc.schemas import TableSchema
from cdc.settings import PostgresSource as PostgresSettings
from cdc.settings import SnapshotSettings
from cdc.source import IDLE, Checkpoint, StreamItem
from cdc.source_offsets import OffsetStore
from cdc.table_selection import check_selection

log = structlog.get_logger(__name__)

HEARTBEAT_PREFIX = "cdc_heartbeat"
STATUS_INTERVAL_S = 1.0
SCAN_TABLES_EVERY_S = 5.0  # how soon a table created on the source joins the stream
SLOT_KEY = "postgres/slot"
PLAN_KEY = "snapshot/plan"
COMPLETE_KEY = "snapshot/complete"
BATCH_ROWS = 500  # row changes per published item
READ_LIMIT = 1000  # replication messages per read: the status update and heartbeat wait no longer
_XLOG_DATA, _INSERT = ord("w"), ord("I")
_RELATION_ID = struct.Struct("!I")


def _range_key(table: str, index: int) -> str:
    return f"snapshot/{table}/{index}"


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
        self._conn: psycopg.Connection[Any] | None = None
        self._repl: ReplicationConnection | None = None

    def _connect(self) -> psycopg.Connection[Any]:
        # named and read-write: a cutover's fence spares this session (heartbeats go on)
        return psycopg.connect(
            self._dsn,
            options=SESSION_OPTIONS + PG_READ_WRITE_OPTION,
            application_name=PG_APPLICATION_NAME,
            autocommit=True,
        )

    # -- the stream -------------------------------------------------------
    def stream(self, start: Position | None = None) -> Iterator[StreamItem]:
        conn = self._conn = self._connect()
        setup.check_server(conn)
        check_selection(self._settings.tables, catalog.table_names(conn)).enforce()
        tables = catalog.select_tables(conn, self._settings.selects)
        setup.check_tables(tables)
        setup.ensure_publication(conn, self._publication, tables)
        registry = TypeRegistry(conn)
        repl = self._repl = ReplicationConnection(self._dsn)
        created = None
        if not setup.check_slot(conn, self._slot, self._offsets.get(SLOT_KEY) is not None):
            export = self._snapshot.mode != "never"
            created = repl.create_slot(self._slot, export_snapshot=export)
            self._offsets.put(SLOT_KEY, {"slot": self._slot, "lsn": created.consistent_point})
            log.info("slot_created", slot=self._slot, lsn=created.consistent_point)
        snapshot = self._snapshot.mode != "never" and self._offsets.get(COMPLETE_KEY) is None
        # A snapshot still to take reads every table; a table added to
        # source.tables since one finished is copied as it joins the stream.
        names = [t.qualified for t in tables]
        added = added_since(self._offsets, names) if self._snapshot.mode != "never" else []
        note_captured(self._offsets, [n for n in names if n not in added], False)
        joining = [t for t in tables if t.qualified in added and not snapshot]
        if snapshot:
            exported = created.snapshot_name if created else None
            if self._copy is None:
                yield from self._take_snapshot(conn, registry, tables, exported)
            else:
                reader = PgCopyReader(
                    conn, registry, tables, exported, self._connect, self._snapshot
                )
                yield from self._copy(reader)
                slot = self._offsets.get(SLOT_KEY) or {}
                yield Checkpoint(SnapshotComplete(int(slot.get("lsn", 0))))
        # the snapshot's schemas are what the stream's first Relation messages follow
        seed = (
            {t.oid: (self._schema_of(registry, t), t.attnums) for t in tables}
            if snapshot and created is not None
            else {}
        )
        yield from self._replicate(conn, repl, registry, seed, tables, joining)

    @staticmethod
    def _schema_of(registry: TypeRegistry, table: catalog.PgTable) -> TableSchema:
        return catalog.table_schema(
            registry, table.schema, table.name, table.columns, table.key, table.not_null,
            table.defaults,
        )  # fmt: skip

    def _take_snapshot(
        self,
        conn: psycopg.Connection[Any],
        registry: TypeRegistry,
        tables: list[catalog.PgTable],
        exported: str | None,
    ) -> Iterator[StreamItem]:
        by_name = {t.qualified: t for t in tables}
        plan = self._offsets.get(PLAN_KEY)
        if plan is None:
            ranges = plan_ranges(
                conn, tables, self._snapshot.parallelism, self._snapshot.chunk_rows
            )
            plan = [[r.table.qualified, r.index, r.lower, r.upper] for r in ranges]
            self._offsets.put(PLAN_KEY, plan)
        todo: list[tuple[KeyRange, tuple[str, ...] | None]] = []
        for name, index, lower, upper in plan:
            state = self._offsets.get(_range_key(name, index)) or {}
            if not state.get("done") and name in by_name:
                after = tuple(state["after"]) if state.get("after") else None
                todo.append((KeyRange(by_name[name], index, lower, upper), after))
        source = {"connector": "postgresql", "db": conn.info.dbname}
        # the byte-level encoders of the stream, fed the COPY output's text fields
        encoders: dict[int, RelationState] = {}
        key_types: dict[int, list[str]] = {}
        for table in tables:
            schema = self._schema_of(registry, table)
            encoders[table.oid] = RelationState(
                schema=schema,
                names=tuple(c.name for c in table.columns),
                converters=tuple(registry.converter(c.type_oid) for c in table.columns),
                key=schema.key,
                source=source,
                fingerprint=schema.fingerprint,
            )
            types = {c.name: registry.info(c.type_oid, c.typmod).name for c in table.columns}
            key_types[table.oid] = [types[k] for k in table.primary_key]
            yield schema
        # A resumed snapshot has lost the slot's exported snapshot: export a new
        # one and keep this transaction open while the readers import it.
        holder = None
        if exported is None:
            holder, exported = export_snapshot(self._connect)
        log.info("snapshot_started", ranges=len(todo), tables=len(tables))
        estimate = conn.execute(
            "SELECT coalesce(sum(greatest(reltuples, 0)), 0)::bigint FROM pg_class"
            " WHERE oid = ANY(%s)",
            ([t.oid for t in tables],),
        ).fetchone()
        progress = Progress("snapshot", estimate[0] if estimate else 0)
        metrics.SNAPSHOT_RANGES_LEFT.set(len(todo))
        started_ms = time.time_ns() // 1_000_000
        reader = ParallelReader(
            self._connect,
            exported,
            key_types,
            self._snapshot.chunk_rows,
            self._snapshot.parallelism,
        )
        # the snapshot's rows name the position their table's stream starts at
        stream_lsn = int((self._offsets.get(SLOT_KEY) or {}).get("lsn", 0))
        try:
            for chunk in reader.read(todo):
                table = chunk.range.table
                encoder = encoders[table.oid]
                yield EncodedChanges(
                    table.schema,
                    table.name,
                    encoder.fingerprint,
                    encoder.encode_reads(
                        chunk.rows, stream_lsn, started_ms, time.time_ns() // 1_000_000
                    ),
                )
                progress.add(len(chunk.rows))
                metrics.SNAPSHOT_ROWS.labels(table=table.qualified).inc(len(chunk.rows))
                if not chunk.last:
                    continue  # the chunk's progress is recorded with its last piece
                if chunk.done:
                    metrics.SNAPSHOT_RANGES_LEFT.dec()
                yield Checkpoint(
                    SnapshotMark(table.qualified, chunk.range.index, chunk.after, chunk.done)
                )
        finally:
            if holder is not None:
                holder.close()
        yield Checkpoint(SnapshotComplete(stream_lsn))
        progress.finish()

    def _replicate(
        self,
        conn: psycopg.Connection[Any],
        repl: ReplicationConnection,
        registry: TypeRegistry,
        seed: Mapping[int, tuple[TableSchema, Mapping[str, int]]],
        tables: list[catalog.PgTable],
        joining: list[catalog.PgTable],
    ) -> Iterator[StreamItem]:
        """`joining`: tables to copy as they join the stream (`cdc.postgres.table_copy`),
        and any created on the source that `source.tables` selects, found as it streams."""
        repl.start(self._slot, self._publication)
        log.info("streaming_started", slot=self._slot)

        def catalog_table(oid: int) -> catalog.PgTable | None:
            try:
                return catalog.load_table(conn, oid)
            except LookupError:
                return None

        state = StreamState(registry, catalog_table, conn.info.dbname, BATCH_ROWS, seed)
        batch, relations = state.batch, state.relations
        decoder = Decoder()
        interval = self._settings.heartbeat_interval_s
        next_heartbeat = time.monotonic() + interval
        next_status = 0.0
        finder = JoiningTables(
            conn, self._publication, self._settings.selects, {t.qualified for t in tables}
        )
        next_scan = time.monotonic() + SCAN_TABLES_EVERY_S

        def keep_alive() -> None:
            repl.send(standby_status_update(self._flush_lsn, self._flush_lsn, self._flush_lsn))

        while True:
            now = time.monotonic()
            if now >= next_scan:
                joining += finder.found()
                next_scan = now + SCAN_TABLES_EVERY_S
            if state.recopy:
                joining += [t for oid in state.recopy if (t := catalog_table(oid)) is not None]
                state.recopy.clear()
            if joining and state.tx is None:  # between transactions
                yield from batch.take()
                for table in joining:
                    yield from copy_table(
                        self._connect, registry, table, conn.info.dbname, self._flush_lsn,
                        keep_alive,
                    )  # fmt: skip
                joining = []
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
                if position.ts_ms:
                    metrics.SOURCE_LAG_SECONDS.set(max(0.0, time.time() - position.ts_ms / 1000))
        elif isinstance(position, SnapshotMark):
            after = list(position.after) if position.after is not None else None
            key = _range_key(position.table, position.index)
            self._offsets.put(key, {"after": after, "done": position.done})
        elif isinstance(position, SnapshotComplete):
            self._offsets.put(COMPLETE_KEY, {"lsn": position.lsn})
            log.info("snapshot_complete")
        elif isinstance(position, TableCopied):
            add_captured(self._offsets, position.table)

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
