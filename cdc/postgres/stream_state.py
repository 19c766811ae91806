"""What the logical replication stream has said so far, and what its control
messages do to it: the table map (Relation), the open transaction (Begin,
Commit, the mark of a transaction a cdc sink applied), transactions the
server streams in pieces before they commit (Stream Start/Stop/Abort/Commit)
and truncates, and the table events pgoutput does not send
(`cdc.postgres.table_events`). Row changes of the open transaction go
straight into `batch` from the source's read loop
(`PostgresSource._replicate`), the hot path.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import replace
from typing import Any

import structlog

from cdc.applied_marks import PG_APPLIED_PREFIX
from cdc.postgres.captured_relations import TableEventSent
from cdc.postgres.catalog import CONNECTOR, PgTable, table_schema
from cdc.postgres.changes import (
    ChangeBatch,
    IgnoredRelation,
    RelationState,
    Transaction,
    ignored,
    relation_state,
    truncate_events,
)
from cdc.postgres.current_row import RowReader
from cdc.postgres.pgoutput import decode
from cdc.postgres.pgoutput_messages import (
    Begin,
    Commit,
    Delete,
    Insert,
    LogicalMessage,
    Relation,
    StreamAbort,
    StreamCommit,
    StreamStart,
    StreamStop,
    Truncate,
    Update,
    pg_time_to_unix_ms,
)
from cdc.postgres.position import PgPosition
from cdc.postgres.table_events import (
    Dropped,
    Name,
    Renamed,
    TableChange,
    TableTracker,
    qualified,
    table_event,
)
from cdc.postgres.txbuffer import StreamedTransaction
from cdc.postgres.types import TypeRegistry
from cdc.schemas import TableSchema
from cdc.source import Checkpoint, StreamItem

log = structlog.get_logger(__name__)

STREAM_MEMORY_BUDGET = 64 * 1024 * 1024  # per streamed transaction, then spill to disk
CatalogTable = Callable[[int], PgTable | None]


def applied_by_sink(message: LogicalMessage) -> bool:
    """The mark a cdc sink puts first in each transaction it applies (cdc.applied_marks)."""
    return message.transactional and message.prefix == PG_APPLIED_PREFIX


class StreamState:
    def __init__(
        self,
        registry: TypeRegistry,
        catalog_table: CatalogTable,
        database: str,
        batch_rows: int,
        tracker: TableTracker,
        seed: Mapping[int, tuple[TableSchema, Mapping[str, int]]] | None = None,
        schemas: Mapping[int, TableSchema] | None = None,
        current: RowReader | None = None,
    ) -> None:
        """`seed`: by relation id, the schema and column numbers a table had
        when this run's snapshot read it: its first Relation message names its
        changes from them (a column renamed during the snapshot stays one).
        `schemas`: the tables' schemas at start, which a table event of a
        table the stream has not named yet names. `current`: what reads a
        row's values from the table (`cdc.postgres.current_row`)."""
        self.relations: dict[int, RelationState] = {}
        self.tx: Transaction | None = None  # the transaction whose changes arrive now
        self.batch = ChangeBatch(batch_rows)
        self._stream_xid: int | None = None  # between Stream Start and Stream Stop
        self._streams: dict[int, StreamedTransaction] = {}
        self._registry = registry
        self._catalog_table = catalog_table
        self._current = current
        self._previous = dict(seed or {})
        # relations whose rows the source copies again at the next transaction end
        self.recopy: list[int] = []
        # relations renamed out of source.tables, to take out of the publication
        self.left: list[int] = []
        self.tracker = tracker
        self._schemas = dict(schemas or {})
        self._database = database
        self._source = {"connector": CONNECTOR, "db": database}
        # How far the stream is known to be, never going back: a Relation
        # message carries no LSN of its own, so its table events take this
        # (in a transaction: the transaction's commit LSN, from its Begin).
        self._position = 0

    @property
    def between_transactions(self) -> bool:
        return self.tx is None and self._stream_xid is None

    def buffered(self, message: Any, lsn: int, payload: bytes | memoryview) -> bool:
        """Whether `message` is a piece of a streamed transaction, kept
        (in memory, then on disk) until its Stream Commit."""
        if self._stream_xid is None or isinstance(message, StreamStop | Relation):
            return False
        xid = getattr(message, "xid", None) or self._stream_xid
        self._streams[self._stream_xid].add(xid, lsn, payload)
        return True

    def control(self, message: Any, lsn: int) -> Iterator[StreamItem]:
        """Any message but a row change of the open transaction; the rows
        gathered so far go before anything it yields."""
        yield from self.batch.take()
        self._position = max(self._position, lsn)
        if isinstance(message, Begin):
            self._position = max(self._position, message.final_lsn)
            self.tx = Transaction(message.xid, pg_time_to_unix_ms(message.commit_time))
        elif isinstance(message, LogicalMessage) and applied_by_sink(message):
            self.tx = None  # a cdc sink wrote it (reverse replication): never back again
        elif isinstance(message, Commit):
            self.tx = None
            commit_ms = pg_time_to_unix_ms(message.commit_time)
            yield from self.reached(message.end_lsn, commit_ms)
            yield Checkpoint(PgPosition(message.end_lsn, commit=True, ts_ms=commit_ms))
        elif isinstance(message, StreamStart):
            self._stream_xid = message.xid
            if message.xid not in self._streams:
                self._streams[message.xid] = StreamedTransaction(message.xid, STREAM_MEMORY_BUDGET)
        elif isinstance(message, StreamStop):
            self._stream_xid = None
        elif isinstance(message, StreamAbort):
            buffered = self._streams.get(message.xid)
            if buffered is not None and message.subxid == message.xid:
                buffered.close()
                del self._streams[message.xid]
            elif buffered is not None:
                buffered.abort_subtransaction(message.subxid)
        elif isinstance(message, StreamCommit):
            yield from self._commit_streamed(message)
        elif self.tx is not None:
            yield from self._apply(message, lsn, self.tx)
        elif isinstance(message, Relation):
            yield from self._apply(message, lsn, Transaction(0, 0))

    def _commit_streamed(self, message: StreamCommit) -> Iterator[StreamItem]:
        buffered = self._streams.pop(message.xid)
        txn = Transaction(message.xid, pg_time_to_unix_ms(message.commit_time))
        log.info("streamed_transaction_committed", xid=message.xid, spilled=buffered.spilled)
        for change_lsn, payload in buffered.replay():
            change = decode(payload, in_stream=True)
            if isinstance(change, LogicalMessage) and applied_by_sink(change):
                break  # the mark comes first: nothing of it was applied
            yield from self._apply(change, change_lsn, txn)
        yield from self.batch.take()
        buffered.close()
        yield from self.reached(message.end_lsn, txn.commit_ms)
        yield Checkpoint(PgPosition(message.end_lsn, commit=True, ts_ms=txn.commit_ms))

    def _apply(self, message: Any, lsn: int, txn: Transaction) -> Iterator[StreamItem]:
        if isinstance(message, Insert | Update | Delete):
            yield from self.batch.add(self.relations[message.relation_id], message, txn, lsn)
            return
        yield from self.batch.take()
        if isinstance(message, Relation):
            yield from self._relation(message, lsn, txn)
        elif isinstance(message, Truncate):
            states = [self.relations[oid] for oid in message.relation_ids]
            yield from truncate_events(states, txn, lsn)

    def _relation(self, message: Relation, lsn: int, txn: Transaction) -> Iterator[StreamItem]:
        oid = message.relation_id
        lsn = max(lsn, self._position)
        changes, name = self.tracker.relation(oid, (message.namespace, message.name), lsn)
        yield from self._table_events(changes, txn.xid, txn.commit_ms, lsn)
        if name is not None and name != (message.namespace, message.name):
            # a replay's older name: its rows go where the sinks know the table now
            message = replace(message, namespace=name[0], name=name[1])
        previous = self._previous.get(oid)
        state = relation_state(
            message, self._registry, self._catalog_table, self._database, previous, self._current
        )
        if name is None:
            self.relations[oid] = ignored(state)
            return
        self.relations[oid] = state
        self._previous[oid] = (state.schema, state.attnums)
        self._schemas[oid] = state.schema
        if state.recopy:
            self.recopy.append(oid)
        if state.schema.changes:
            log.info(
                "schema_change",
                table=f"{state.schema.schema}.{state.schema.table}",
                changes=[f"{c.kind} {c.column}" for c in state.schema.changes],
            )
        yield state.schema

    def rejoined(self, oid: int, name: Name) -> Iterator[StreamItem]:
        """A table that left the pipeline joins it again under `name`: its
        rows stream from now on, also when no Relation message comes first
        (the publication kept it, so nothing tells pgoutput to send one)."""
        state = self.relations.get(oid)
        if isinstance(state, IgnoredRelation):
            schema = replace(state.schema, schema=name[0], table=name[1], changes=())
            self.relations[oid] = live = RelationState(
                schema, state.names, state.converters, state.key, state.source,
                schema.fingerprint, moved=state.moved,
            )  # fmt: skip
            self._schemas[oid] = schema
            yield live.schema

    def reached(self, lsn: int, commit_ms: int = 0) -> Iterator[StreamItem]:
        """The stream is past `lsn`, between transactions: the table events due."""
        self._position = max(self._position, lsn)
        changes = self.tracker.reached(lsn)
        if changes:
            yield from self.batch.take()
            yield from self._table_events(changes, 0, commit_ms, lsn)

    def _table_events(
        self, changes: list[TableChange], xid: int, commit_ms: int, lsn: int
    ) -> Iterator[StreamItem]:
        """Each change as its event, after the schema it names; then the
        checkpoint that records it once Kafka has it."""
        for change in changes:
            old = change.old if isinstance(change, Renamed) else change.name
            schema = self._schema_named(change.oid, old)
            yield schema
            yield table_event(change, schema, xid, commit_ms, lsn, self._source)
            new = change.new if isinstance(change, Renamed) else None
            if new is None:
                log.info("schema_change", table=qualified(old), kind="drop_table")
            else:
                log.info("schema_change", table=qualified(old), kind="rename_table",
                         to=qualified(new))  # fmt: skip
            if isinstance(change, Dropped) and change.oid is not None:
                self._previous.pop(change.oid, None)
                self._schemas.pop(change.oid, None)
                state = self.relations.pop(change.oid, None)
                if change.left:
                    self.left.append(change.oid)
                    if state is not None:
                        self.relations[change.oid] = ignored(state)
            since = change.since if isinstance(change, Renamed) else lsn
            yield Checkpoint(TableEventSent(since, old, new, change.oid))

    def _schema_named(self, oid: int | None, name: Name) -> TableSchema:
        """The table's schema under `name`: the last one the stream gave,
        else the catalog's now, else (a table gone) one without columns."""
        known = self._schemas.get(oid) if oid is not None else None
        if known is not None and (known.schema, known.table) == name:
            return known
        table = self._catalog_table(oid) if oid is not None else None
        if table is None:
            return TableSchema(CONNECTOR, name[0], name[1], (), ())
        return table_schema(
            self._registry, name[0], name[1], table.columns, table.key, table.not_null,
            table.defaults, keyless=table.keyless,
        )  # fmt: skip
