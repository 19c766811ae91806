"""Decoded pgoutput messages to change events: the stream's hot path.

A `RelationState` is built once per Relation message (column converters,
key positions, the table schema) so that each row costs only its
conversions and one dict.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from cdc.events import ChangeEvent, Op
from cdc.postgres.catalog import PgColumn, table_schema
from cdc.postgres.pgoutput import UNCHANGED, Delete, Insert, Relation, TupleData, Update
from cdc.postgres.position import PgPosition
from cdc.postgres.types import Converter, TypeRegistry
from cdc.schemas import TableSchema


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

    def row(self, values: TupleData) -> tuple[dict[str, Any], tuple[str, ...]]:
        """Python row and the unchanged-TOAST columns left out of it."""
        if UNCHANGED not in values:
            # Every insert and most updates: one comprehension is about twice
            # as fast as the general loop below. (mypy cannot see that the
            # membership test excluded UNCHANGED.)
            return {
                name: None if value is None else convert(value)  # type: ignore[arg-type]
                for name, convert, value in zip(self.names, self.converters, values, strict=True)
            }, ()
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

    def key_of(self, row: dict[str, Any]) -> dict[str, Any]:
        return {name: row[name] for name in self.key}


def relation_state(
    relation: Relation,
    registry: TypeRegistry,
    catalog_key: Callable[[int], tuple[tuple[str, ...], frozenset[str]] | None],
    database: str,
) -> RelationState:
    """`catalog_key(oid)` gives the primary key and NOT NULL columns from the
    catalog; pgoutput's key flags mark the replica identity, which is every
    column under REPLICA IDENTITY FULL."""
    columns = [PgColumn(c.name, c.type_oid, c.type_modifier) for c in relation.columns]
    found = catalog_key(relation.relation_id)
    primary_key, not_null = found if found else ((), frozenset())
    key = primary_key or relation.key_names or relation.column_names
    schema = table_schema(registry, relation.namespace, relation.name, columns, key, not_null)
    return RelationState(
        schema=schema,
        names=relation.column_names,
        converters=tuple(registry.converter(c.type_oid) for c in columns),
        key=tuple(key),
        source={"connector": "postgresql", "db": database},
        fingerprint=schema.fingerprint,
    )


def _event(
    state: RelationState,
    op: Op,
    key: dict[str, Any] | None,
    before: dict[str, Any] | None,
    after: dict[str, Any] | None,
    tx: Transaction,
    lsn: int,
    unchanged: tuple[str, ...] = (),
) -> ChangeEvent:
    schema = state.schema
    return ChangeEvent(
        op=op,
        schema=schema.schema,
        table=schema.table,
        key=key,
        before=before,
        after=after,
        ts_ms=tx.commit_ms,
        position=PgPosition(lsn),
        fingerprint=state.fingerprint,
        txid=tx.xid,
        source={**state.source, "lsn": lsn},
        unchanged=unchanged,
    )


def row_events(
    state: RelationState, message: Insert | Update | Delete, tx: Transaction, lsn: int
) -> Iterator[ChangeEvent]:
    if isinstance(message, Insert):
        row, unchanged = state.row(message.new)
        yield _event(state, Op.CREATE, state.key_of(row), None, row, tx, lsn, unchanged)
    elif isinstance(message, Update):
        row, unchanged = state.row(message.new)
        key = state.key_of(row)
        old_values = message.old if message.old is not None else message.key
        before = state.row(old_values)[0] if old_values is not None else None
        if before is not None and any(before.get(k) != key[k] for k in state.key):
            # a key change is a delete of the old key and an insert of the new
            # one, so each key's history stays in its own partition
            old_key = {k: before.get(k) for k in state.key}
            yield _event(state, Op.DELETE, old_key, before, None, tx, lsn)
            yield _event(state, Op.CREATE, key, None, row, tx, lsn, unchanged)
        else:
            full_before = before if message.old is not None else None
            yield _event(state, Op.UPDATE, key, full_before, row, tx, lsn, unchanged)
    elif message.old is not None:
        before, _ = state.row(message.old)
        yield _event(state, Op.DELETE, state.key_of(before), before, None, tx, lsn)
    else:
        assert message.key is not None, "pgoutput always sends the old key of a delete"
        # only the key columns were sent; the others are not known, not NULL
        key = state.key_of(state.row(message.key)[0])
        yield _event(state, Op.DELETE, key, dict(key), None, tx, lsn)


def truncate_events(
    states: Sequence[RelationState], tx: Transaction, lsn: int
) -> Iterator[ChangeEvent]:
    for state in states:
        yield _event(state, Op.TRUNCATE, None, None, None, tx, lsn)
