"""The Debezium-style message envelope: key and value bytes of one event.

Value: `{"before", "after", "source", "op", "ts_ms"}` plus `"unchanged"`
(the columns a source did not send, PostgreSQL unchanged TOAST) when there
are any. `ts_ms` is when cdc processed the event; `source.ts_ms` is the
source commit time, as in Debezium.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import orjson

from cdc import values
from cdc.events import ChangeEvent, Op, Row


def encode_key(event: ChangeEvent) -> bytes | None:
    """JSON object of the key columns, in key order, or None (a truncate has no key)."""
    if event.key is None:
        return None
    return values.dumps(event.key)


def encode_value(event: ChangeEvent) -> bytes:
    source = {
        **event.source,
        "schema": event.schema,
        "table": event.table,
        "ts_ms": event.ts_ms,
        "txId": event.txid,
        "snapshot": "true" if event.op is Op.READ else "false",
    }
    envelope: dict[str, Any] = {
        "before": event.before,
        "after": event.after,
        "source": source,
        "op": event.op.value,
        "ts_ms": time.time_ns() // 1_000_000,
    }
    if event.unchanged:
        envelope["unchanged"] = event.unchanged
    return values.dumps(envelope)


@dataclass(frozen=True, slots=True)
class Envelope:
    """A decoded value, values still in their wire form (see cdc.values)."""

    op: Op
    before: Row | None
    after: Row | None
    source: Row
    ts_ms: int
    unchanged: tuple[str, ...]


# A dict lookup: a sink decodes every message, and Op(...) costs several times more.
_OPS = {op.value: op for op in Op}


def decode_value(data: bytes) -> Envelope:
    """Raises KeyError for an unknown op or a missing field."""
    raw = orjson.loads(data)
    return Envelope(
        op=_OPS[raw["op"]],
        before=raw["before"],
        after=raw["after"],
        source=raw["source"],
        ts_ms=raw["ts_ms"],
        unchanged=tuple(raw.get("unchanged", ())),
    )


def decode_key(data: bytes | None) -> Row | None:
    return None if data is None else orjson.loads(data)
