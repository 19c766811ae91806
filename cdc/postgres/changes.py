"""Decoded pgoutput messages to wire messages: the stream's hot path.

A `RelationState` is built once per Relation message (column converters,
key columns, the table schema) and an envelope template once per relation and
transaction, so that each row costs only its conversions and JSON: no event
object, no envelope dicts. An insert's JSON is written straight from the
replication message's bytes; other changes build their rows as dicts.
"""

from __future__ import annotations

import struct
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from cdc import values
from cdc.ddl.schema_diff import copied_fills, next_version
from cdc.envelope import TransactionTemplate, ValueTemplate
from cdc.events import ChangeEvent, EncodedChanges, Op
from cdc.postgres.catalog import PgColumn, PgTable, table_schema
from cdc.postgres.current_row import ColumnRef, MovedRows, RowReader
from cdc.postgres.pgoutput import insert_values
from cdc.postgres.pgoutput_messages import UNCHANGED, Delete, Insert, Relation, TupleData, Update
from cdc.postgres.position import PgPosition
from cdc.postgres.row_functions import (
    FieldsJsonBuilder,
    JsonBuilder,
    KeyBuilder,
    RowBuilder,
    compile_row_functions,
)
from cdc.postgres.types import Converter, TypeRegistry
from cdc.schemas import TableSchema

Message = tuple[Op, bytes, bytes]  # op, key, value, as in EncodedChanges
_NULL = b"null"
_CREATE, _READ = Op.CREATE, Op.READ  # globals, not enum attribute lookups per row
_NEW = ord("N")
_TX_FIELDS = ("ts_ms", "txId")  # what one transaction's rows share and the next one's change


@dataclass(frozen=True, slots=True)
class Transaction:
    xid: int
    commit_ms: int


@dataclass(slots=True)
class RelationState:
    schema: TableSchema
    names: tuple[str, ...]
    converters: tuple[Converter, ...]
    key: tuple[str, ...]
    source: dict[str, Any]
    # TableSchema.fingerprint hashes the whole schema on every access: once
    # per relation here, not once per row
    fingerprint: str
    attnums: Mapping[str, int] = field(default_factory=dict)  # column -> number
    recopy: bool = False  # its rows are to be copied again (`cdc.ddl.schema_diff.copied_fills`)
    # what reads a moved row's unchanged TOAST values from the table
    moved: MovedRows | None = None
    _build: RowBuilder = field(init=False)
    key_of: KeyBuilder = field(init=False)
    _json: JsonBuilder = field(init=False)
    _json_fields: FieldsJsonBuilder = field(init=False)
    # the envelope template of the relation (built once), of the transaction `_tx`,
    # and its insert format
    _transaction: TransactionTemplate | None = field(default=None, init=False)
    _template: ValueTemplate | None = field(default=None, init=False)
    _tx: Transaction | None = field(default=None, init=False)
    _insert: bytes = field(default=b"", init=False)

    def __post_init__(self) -> None:
        self._build, self.key_of, self._json, self._json_fields = compile_row_functions(
            self.names, self.converters, self.key
        )

    def row(self, values: TupleData) -> tuple[dict[str, Any], tuple[str, ...]]:
        """Python row and the unchanged-TOAST columns left out of it."""
        if UNCHANGED not in values:
            return self._build(values), ()
        row: dict[str, Any] = {}
        unchanged: list[str] = []
        for name, convert, value in zip(self.names, self.converters, values, strict=True):
            if value is None:
                row[name] = None
            elif value is UNCHANGED:
                unchanged.append(name)
            else:
                row[name] = convert(value)
        return row, tuple(unchanged)

    def encode(
        self,
        message: Insert | Update | Delete,
        tx: Transaction,
        lsn: int,
        now_ms: int,
        out: list[Message],
    ) -> None:
        """Append the messages of one row change to `out`."""
        template = self._template_of(tx)
        dumps = values.dumps
        if type(message) is Insert and UNCHANGED not in message.new:
            # a decoded insert (of a streamed transaction): without the generator below
            row = self._build(message.new)
            value = self._insert % (_NULL, dumps(row), lsn, now_ms)
            out.append((_CREATE, dumps(self.key_of(row)), value))
            return
        for op, key_row, before, after, unchanged in self._changes(message, tx.xid):
            value = template.encode(
                op,
                _NULL if before is None else dumps(before),
                _NULL if after is None else dumps(after),
                lsn,
                now_ms,
                unchanged,
            )
            out.append((op, dumps(key_row), value))

    def encode_insert(
        self, buf: bytes, pos: int, tx: Transaction, lsn: int, now_ms: int, out: list[Message]
    ) -> None:
        """`encode` of the Insert whose relation id is at `pos` of `buf` and
        whose tuple ends it: the bulk of every stream, straight from the
        message's bytes to Kafka's."""
        try:
            encoded = self._json(buf, pos + 5) if buf[pos + 4] == _NEW else None
        except (struct.error, IndexError):  # malformed: the decoder says how
            encoded = None
        if encoded is None:
            self.encode(Insert(*insert_values(buf, pos)), tx, lsn, now_ms, out)
            return
        if self._tx is not tx:
            self._template_of(tx)
        out.append((_CREATE, encoded[0], self._insert % (_NULL, encoded[1], lsn, now_ms)))

    def encode_reads(
        self, rows: Sequence[Sequence[bytes | None]], lsn: int, ts_ms: int, now_ms: int
    ) -> list[Message]:
        """Snapshot rows (text fields as COPY sent them) to `op: r` messages
        of a snapshot read at `ts_ms` whose stream starts at `lsn`."""
        source = {**self.source, "lsn": lsn}
        template = ValueTemplate.of_rows(
            self.schema, self.fingerprint, ts_ms, PgPosition(lsn), source, "lsn"
        )
        read = template.format(Op.READ)
        json_fields = self._json_fields
        messages = []
        for fields in rows:
            key, row = json_fields(fields)
            messages.append((_READ, key, read % (_NULL, row, lsn, now_ms)))
        return messages

    def _key_part(self, before: dict[str, Any]) -> dict[str, Any]:
        """The key columns of an old key tuple (a key is never NULL: a NULL
        is a column of another replica identity index, not sent)."""
        return {k: before[k] for k in self.key if before.get(k) is not None}

    def _template_of(self, tx: Transaction) -> ValueTemplate:
        template = self._template
        if self._tx is not tx or template is None:
            transaction = self._transaction
            if transaction is None:
                transaction = self._transaction = TransactionTemplate(
                    _event(self, Op.CREATE, tx, 0), "lsn", _TX_FIELDS
                )
            template = self._template = transaction.begin((tx.commit_ms, tx.xid))
            self._insert = template.format(Op.CREATE)
            self._tx = tx
        return template

    def _changes(
        self, message: Insert | Update | Delete, xid: int
    ) -> Iterator[
        tuple[Op, dict[str, Any], dict[str, Any] | None, dict[str, Any] | None, tuple[str, ...]]
    ]:
        """(op, key, before, after, unchanged) of each change the message makes."""
        if isinstance(message, Insert):
            row, unchanged = self.row(message.new)
            yield Op.CREATE, self.key_of(row), None, row, unchanged
        elif isinstance(message, Update):
            row, unchanged = self.row(message.new)
            old_values = message.old if message.old is not None else message.key
            before = self.row(old_values)[0] if old_values is not None else None
            if unchanged and before is not None:
                # REPLICA IDENTITY FULL sent the whole old row: an unchanged TOASTed
                # value is known, and a keyless table's key (every column) needs it.
                # Else the old key came (a key changed, or holds a TOASTed value):
                # the new row's key needs its unchanged columns.
                known = before if message.old is not None else self._key_part(before)
                row.update((name, known[name]) for name in unchanged if name in known)
                unchanged = tuple(name for name in unchanged if name not in known)
            key = self.key_of(row)
            if before is not None and any(before.get(k) != key[k] for k in self.key):
                # a key change is a delete of the old key and an insert of the new
                # one, so each key's history stays in its own partition
                old_key = {k: before.get(k) for k in self.key}
                yield Op.DELETE, old_key, before, None, ()
                if unchanged and old_values is not None and self.moved is not None:
                    # the sink has no row under the new key to keep those values
                    # in: they are read from the table
                    if not self.moved.fill(message.new, old_values, row, unchanged, xid):
                        return
                    unchanged = ()
                yield Op.CREATE, key, None, row, unchanged
            else:
                full_before = before if message.old is not None else None
                yield Op.UPDATE, key, full_before, row, unchanged
        elif message.old is not None:
            before, _ = self.row(message.old)
            yield Op.DELETE, self.key_of(before), before, None, ()
        else:
            assert message.key is not None, "pgoutput always sends the old key of a delete"
            # only the key columns were sent; the others are not known, not NULL
            key = self.key_of(self.row(message.key)[0])
            yield Op.DELETE, key, dict(key), None, ()


class IgnoredRelation(RelationState):
    """A table that left the pipeline (renamed to a name source.tables does
    not select) while pgoutput may still send its changes: they are dropped,
    at no cost to the path every other row takes."""

    __slots__ = ()

    def encode(
        self,
        message: Insert | Update | Delete,
        tx: Transaction,
        lsn: int,
        now_ms: int,
        out: list[Message],
    ) -> None:
        return

    def encode_insert(
        self, buf: bytes, pos: int, tx: Transaction, lsn: int, now_ms: int, out: list[Message]
    ) -> None:
        return


def ignored(state: RelationState) -> RelationState:
    return IgnoredRelation(
        state.schema, state.names, state.converters, state.key, state.source, state.fingerprint
    )


def relation_state(
    relation: Relation,
    registry: TypeRegistry,
    catalog_table: Callable[[int], PgTable | None],
    database: str,
    previous: tuple[TableSchema, Mapping[str, int]] | None,
    current: RowReader | None = None,
) -> RelationState:
    """`catalog_table(oid)` gives the primary key, NOT NULL columns, defaults
    and column numbers from the catalog; pgoutput's key flags mark the replica
    identity, which is every column under REPLICA IDENTITY FULL. `previous`:
    the relation's schema before this message and its column numbers, which
    the new one names its changes from (a number under a new name: a rename).
    `current`: what reads a row's values from the table (`cdc.postgres.current_row`)."""
    columns = [PgColumn(c.name, c.type_oid, c.type_modifier) for c in relation.columns]
    table = catalog_table(relation.relation_id)
    primary_key = table.primary_key if table else ()
    key = primary_key or relation.key_names or relation.column_names
    schema = table_schema(
        registry,
        relation.namespace,
        relation.name,
        columns,
        key,
        table.not_null if table else frozenset(),
        table.defaults if table else {},
        keyless=table.keyless if table else None,
    )
    # The catalog is read now, maybe after later DDL: a column renamed again
    # since has no number here, and is taken for a drop and an add.
    attnums = {c.name: table.attnums[c.name] for c in columns if table and c.name in table.attnums}
    renamed = {}
    if previous is not None:
        by_number = {n: name for name, n in previous[1].items()}
        renamed = {
            by_number[n]: name
            for name, n in attnums.items()
            if n in by_number and by_number[n] != name
        }
    schema = next_version(previous[0] if previous else None, schema, renamed)
    # a column added with per-row values (a volatile default rewrote the
    # table): NULL first, then the table's rows are copied again in the stream
    schema, recopy = copied_fills(schema)
    converters = tuple(registry.converter(c.type_oid) for c in columns)
    moved = None
    if current is not None:
        refs = tuple(
            ColumnRef(attnums[c.name], c.type_oid, c.typmod) if c.name in attnums else None
            for c in columns
        )
        not_null = frozenset(c.name for c in schema.columns if not c.nullable)
        moved = MovedRows(
            current, relation.relation_id, relation.column_names, converters, refs, tuple(key),
            not_null,
        )  # fmt: skip
    return RelationState(
        schema=schema,
        names=relation.column_names,
        converters=converters,
        key=tuple(key),
        source={"connector": "postgresql", "db": database},
        fingerprint=schema.fingerprint,
        attnums=attnums,
        recopy=recopy,
        moved=moved,
    )


class ChangeBatch:
    """Encoded row changes gathered into one `EncodedChanges` per relation
    run, at most `limit` rows: the pipeline then pays its per-item costs
    (generator hop, dispatch, poll check) once per batch instead of per row."""

    __slots__ = ("_limit", "_messages", "_now_ms", "_state")

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._state: RelationState | None = None
        self._messages: list[Message] = []
        self._now_ms = 0

    def add(
        self, state: RelationState, message: Insert | Update | Delete, tx: Transaction, lsn: int
    ) -> list[EncodedChanges]:
        """Encode one row change; returns the batch it completed, if any, to
        be published before this one."""
        same = state is self._state and len(self._messages) < self._limit
        full = [] if same else self._new(state)
        state.encode(message, tx, lsn, self._now_ms, self._messages)
        return full

    def add_insert(
        self, state: RelationState, buf: bytes, pos: int, tx: Transaction, lsn: int
    ) -> list[EncodedChanges]:
        """`add` of the Insert in `buf` (see `RelationState.encode_insert`)."""
        same = state is self._state and len(self._messages) < self._limit
        full = [] if same else self._new(state)
        state.encode_insert(buf, pos, tx, lsn, self._now_ms, self._messages)
        return full

    def _new(self, state: RelationState) -> list[EncodedChanges]:
        """Start a batch of `state`'s rows; returns the one it ends, if any."""
        full = self.take()
        self._state = state
        # the envelope's processing time, once per batch: its rows are
        # encoded within milliseconds
        self._now_ms = time.time_ns() // 1_000_000
        return full

    def take(self) -> list[EncodedChanges]:
        """The rows gathered so far (none or one batch); publish them before
        any other item."""
        state = self._state
        if state is None or not self._messages:
            return []
        batch = EncodedChanges(
            state.schema.schema, state.schema.table, state.fingerprint, self._messages
        )
        self._state, self._messages = None, []
        return [batch]


def _event(state: RelationState, op: Op, tx: Transaction, lsn: int) -> ChangeEvent:
    schema = state.schema
    return ChangeEvent(
        op=op,
        schema=schema.schema,
        table=schema.table,
        key=None,
        before=None,
        after=None,
        ts_ms=tx.commit_ms,
        position=PgPosition(lsn),
        fingerprint=state.fingerprint,
        txid=tx.xid,
        source={**state.source, "lsn": lsn},
    )


def truncate_events(
    states: Sequence[RelationState], tx: Transaction, lsn: int
) -> Iterator[ChangeEvent]:
    for state in states:
        if not isinstance(state, IgnoredRelation):
            yield _event(state, Op.TRUNCATE, tx, lsn)
