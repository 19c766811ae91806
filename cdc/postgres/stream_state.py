"""What the logical replication stream has said so far, and what its control
messages do to it: the table map (Relation), the open transaction (Begin,
Commit, the mark of a transaction a cdc sink applied), transactions the
server streams in pieces before they commit (Stream Start/Stop/Abort/Commit)
and truncates. Row changes of the open transaction go straight into `batch`
from the source's read loop (`PostgresSource._replicate`), the hot path.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

import structlog

from cdc.applied_marks import PG_APPLIED_PREFIX
from cdc.postgres.catalog import PgTable
from cdc.postgres.changes import (
    ChangeBatch,
    RelationState,
    Transaction,
    relation_state,
    truncate_events,
)
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
        seed: Mapping[int, tuple[TableSchema, Mapping[str, int]]] | None = None,
    ) -> None:
        """`seed`: by relation id, the schema and column numbers a table had
        when this run's snapshot read it: its first Relation message names its
        changes from them (a column renamed during the snapshot stays one)."""
        self.relations: dict[int, RelationState] = {}
        self.tx: Transaction | None = None  # the transaction whose changes arrive now
        self.batch = ChangeBatch(batch_rows)
        self._stream_xid: int | None = None  # between Stream Start and Stream Stop
        self._streams: dict[int, StreamedTransaction] = {}
        self._registry = registry
        self._catalog_table = catalog_table
        self._previous = dict(seed or {})
        # relations whose rows the source copies again at the next transaction end
        self.recopy: list[int] = []
        self._database = database

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
        if isinstance(message, Begin):
            self.tx = Transaction(message.xid, pg_time_to_unix_ms(message.commit_time))
        elif isinstance(message, LogicalMessage) and applied_by_sink(message):
            self.tx = None  # a cdc sink wrote it (reverse replication): never back again
        elif isinstance(message, Commit):
            self.tx = None
            commit_ms = pg_time_to_unix_ms(message.commit_time)
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
        yield Checkpoint(PgPosition(message.end_lsn, commit=True, ts_ms=txn.commit_ms))

    def _apply(self, message: Any, lsn: int, txn: Transaction) -> Iterator[StreamItem]:
        if isinstance(message, Insert | Update | Delete):
            yield from self.batch.add(self.relations[message.relation_id], message, txn, lsn)
            return
        yield from self.batch.take()
        if isinstance(message, Relation):
            previous = self._previous.get(message.relation_id)
            state = relation_state(
                message, self._registry, self._catalog_table, self._database, previous
            )
            self.relations[message.relation_id] = state
            self._previous[message.relation_id] = (state.schema, state.attnums)
            if state.recopy:
                self.recopy.append(message.relation_id)
            if state.schema.changes:
                log.info(
                    "schema_change",
                    table=f"{state.schema.schema}.{state.schema.table}",
                    changes=[f"{c.kind} {c.column}" for c in state.schema.changes],
                )
            yield state.schema
        elif isinstance(message, Truncate):
            states = [self.relations[oid] for oid in message.relation_ids]
            yield from truncate_events(states, txn, lsn)
