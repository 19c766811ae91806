"""The change event every source emits and every sink applies."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from cdc.position import Position


class Op(StrEnum):
    """Debezium's operation letters, so existing consumers read our topics."""

    CREATE = "c"
    UPDATE = "u"
    DELETE = "d"
    READ = "r"  # a row read by the initial snapshot
    TRUNCATE = "t"
    # Table-wide events, which Debezium keeps off its row topics. A sink must
    # meet them in order with the table's rows on every partition.
    DROP = "drop"  # DROP TABLE
    RENAME = "rename"  # RENAME TABLE: `after` is {"schema", "table"} of the new name


# The ops that concern a whole table: no key, a copy on each partition of its topic
# (a rename's also on each of the new name's), met by the sink as a barrier.
TABLE_OPS = frozenset({Op.TRUNCATE, Op.DROP, Op.RENAME})


Row = Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class ChangeEvent:
    """One row change (or a table-wide event, `TABLE_OPS`) as it happened at the source.

    Values in `key`, `before` and `after` are Python values (int, Decimal,
    datetime, bytes, ...) or already their wire form (a source may convert
    straight to it, e.g. a PostgreSQL numeric to its text); `cdc.values`
    encodes them for the wire.
    `unchanged` lists columns whose value the source did not send (PostgreSQL
    unchanged TOAST): they are absent from `after` and a sink keeps the stored
    value instead of writing NULL.
    """

    op: Op
    schema: str
    table: str
    key: Row | None
    before: Row | None
    after: Row | None
    ts_ms: int  # source commit time, milliseconds since the epoch
    position: Position
    fingerprint: str  # the table schema this row was written with (see cdc.schemas)
    txid: int | str | None = None
    source: Row = field(default_factory=dict)  # connector-specific fields: lsn, file, pos, gtid
    unchanged: tuple[str, ...] = ()

    @property
    def snapshot(self) -> bool:
        return self.op is Op.READ


@dataclass(frozen=True, slots=True)
class EncodedChanges:
    """Row changes of one table, already encoded for the wire: a source's
    fast path for a busy stream, one item for many rows.

    Each message is `(op, key, value)` as `cdc.envelope` encodes a
    `ChangeEvent`; the publisher adds the tombstone after a delete, as it does
    for events. `fingerprint` names the table schema of every row here.
    """

    schema: str
    table: str
    fingerprint: str
    messages: list[tuple[Op, bytes, bytes]]
