"""Insert-only batches: a snapshot or an append-only table, most of a sink's work.

When every message of a batch is a whole new row (op `c` or `r`), no
transform is configured and the target takes rows straight (a
`DirectInserter`), the messages go to it as they came: the target turns their
`after` rows into its bulk format in native code (`cdc_copytext`), with no
change objects, no per-key collapse, no existence query. A target refuses
such a batch when a key exists already, a message is more than a new row, a
value is not one the native encoder converts, or the table's policy needs the
planned path; the worker then applies it the planned way, so every conflict
is still resolved by its policy and a refused value still reaches the
dead-letter topic.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from cdc_copytext import group_by_topic
from confluent_kafka import Message

from cdc.applier import ApplyResult
from cdc.errors import TransientError
from cdc.schemas import SCHEMA_HEADER, TableSchema

Offsets = dict[tuple[str, int], int]  # next offset per (topic, partition)


@dataclass(slots=True)
class InsertBatch:
    """Messages of one table, in wire form, as its topic held them."""

    schema: TableSchema
    values: list[bytes]

    @property
    def target(self) -> tuple[str, str]:
        # no transform runs on this path: no route changes the table
        return self.schema.schema, self.schema.table


class SchemaLookup(Protocol):
    def get(self, fingerprint: bytes) -> TableSchema: ...


@runtime_checkable
class DirectInserter(Protocol):
    def insert(self, batches: Sequence[InsertBatch], offsets: Offsets) -> ApplyResult | None:
        """Insert every message's row and record `offsets` in one transaction;
        None, with nothing applied, when the batch must take the planned path."""
        ...


def scan(
    messages: list[Message], schemas: SchemaLookup
) -> tuple[list[InsertBatch], Offsets] | None:
    """The batch's messages per table, or None when one cannot be a new row
    (a tombstone, no key, no schema header), a table's schema changes inside
    the batch, or a schema is not known yet. Whether each message is a new
    row is the target's to find out as it encodes them."""
    grouped = group_by_topic(messages, SCHEMA_HEADER)
    if grouped is None:
        return None
    groups, offsets = grouped
    batches = []
    for _, fingerprint, values in groups:
        try:
            schema = schemas.get(fingerprint)
        except TransientError:
            return None
        batches.append(InsertBatch(schema, values))
    return batches, offsets
