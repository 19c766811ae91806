"""Insert-only batches: a snapshot or an append-only table, most of a sink's work.

When every message of a batch is a whole new row (op `c` or `r`), no
transform is configured and the target takes rows straight (a
`DirectInserter`), the rows go to it as they were decoded: no change objects,
no per-key collapse, no existence query. A target refuses such a batch when a
key exists already (or a value, or the table's policy, needs the planned
path), and the worker then applies it the planned way, so every conflict is
still resolved by its policy and a refused value still reaches the
dead-letter topic.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import orjson
from confluent_kafka import Message

from cdc.errors import TransientError
from cdc.schemas import TableSchema, fingerprint_of
from sinks.base import ApplyResult

Offsets = dict[tuple[str, int], int]  # next offset per (topic, partition)
_NEW_ROW_OPS = ("c", "r")  # wire ops of a whole new row: create, snapshot read


@dataclass(slots=True)
class InsertBatch:
    """New rows of one table, in wire form, as its topic held them."""

    target: tuple[str, str]
    schema: TableSchema
    fingerprint: bytes
    rows: list[dict[str, Any]]
    last_source: dict[str, Any]  # `source` of the last row (its commit time)


class SchemaLookup(Protocol):
    def get(self, fingerprint: bytes) -> TableSchema: ...


@runtime_checkable
class DirectInserter(Protocol):
    def insert(self, batches: Sequence[InsertBatch], offsets: Offsets) -> ApplyResult | None:
        """Insert every row and record `offsets` in one transaction; None,
        with nothing applied, when the batch must take the planned path."""
        ...


def scan(
    messages: Sequence[Message], schemas: SchemaLookup
) -> tuple[list[InsertBatch], Offsets] | None:
    """The batch as new rows per table, or None when any message is more
    than a new row (an update, a delete, a tombstone, a schema change inside
    the batch) or less (unreadable: the planned path dead-letters it)."""
    by_topic: dict[str, InsertBatch] = {}
    offsets: Offsets = {}
    loads = orjson.loads
    for msg in messages:
        value = msg.value()
        fingerprint = fingerprint_of(msg.headers())
        if value is None or msg.key() is None or fingerprint is None:
            return None
        try:
            event = loads(value)
            op, after = event["op"], event["after"]
        except (orjson.JSONDecodeError, KeyError, TypeError):
            return None
        if op not in _NEW_ROW_OPS or type(after) is not dict or "unchanged" in event:
            return None
        topic = msg.topic() or ""
        batch = by_topic.get(topic)
        if batch is None:
            try:
                schema = schemas.get(fingerprint)
            except TransientError:
                return None
            batch = by_topic[topic] = InsertBatch(
                (schema.schema, schema.table), schema, fingerprint, [], {}
            )
        elif batch.fingerprint != fingerprint:
            return None  # the table changed inside the batch: the planned path follows it
        batch.rows.append(after)
        batch.last_source = event["source"]
        offsets[(topic, msg.partition() or 0)] = (msg.offset() or 0) + 1
    return list(by_topic.values()), offsets


def newest_commit_ms(batches: Sequence[InsertBatch]) -> int:
    """Source commit time of the newest row, near enough for the lag metric:
    the newest of each topic's last rows."""
    times = [b.last_source.get("ts_ms") for b in batches if isinstance(b.last_source, dict)]
    return max((int(t) for t in times if isinstance(t, int)), default=0)
