"""The Debezium-style message envelope: key and value bytes of one event.

Value: `{"before", "after", "source", "op", "ts_ms"}` plus `"unchanged"`
(the columns a source did not send, PostgreSQL unchanged TOAST) when there
are any. `ts_ms` is when cdc processed the event; `source.ts_ms` is the
source commit time, as in Debezium.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import replace
from typing import Any, NamedTuple

import orjson

from cdc import values
from cdc.events import ChangeEvent, Op, Row
from cdc.position import Position
from cdc.schemas import TableSchema


def encode_key(event: ChangeEvent) -> bytes | None:
    """JSON object of the key columns, in key order, or None (a truncate has no key)."""
    if event.key is None:
        return None
    return values.dumps(event.key)


def encode_value(event: ChangeEvent, now_ms: int | None = None) -> bytes:
    """`now_ms`: the processing time (`ts_ms`), now unless given."""
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
        "ts_ms": time.time_ns() // 1_000_000 if now_ms is None else now_ms,
    }
    if event.unchanged:
        envelope["unchanged"] = event.unchanged
    return values.dumps(envelope)


# Unique stand-ins for the parts of a value that vary row by row: a template
# is `encode_value`'s own output around them, so both write the same bytes.
_HOLE_ROW = "\x00cdc row\x00"
_HOLE_POSITION = -7_318_055_112_389_456_921
_HOLE_NOW = -7_318_055_112_389_456_922


class ValueTemplate:
    """Value bytes of many row changes of one table in one transaction, where
    only the rows, one position field of `source` and the processing time
    differ: `encode_value` runs once per op and this fills in the holes, so a
    busy stream encodes each row without building an event or its dicts.
    Rows must already be JSON (`cdc.values.dumps`)."""

    __slots__ = ("_event", "_formats", "_position_field")

    def __init__(self, event: ChangeEvent, position_field: str) -> None:
        # `event` gives everything but the holes (its op, rows, key are ignored)
        self._event = event
        self._position_field = position_field
        self._formats: dict[Op, bytes] = {}

    @classmethod
    def of_rows(
        cls,
        schema: TableSchema,
        fingerprint: str,
        ts_ms: int,
        position: Position,
        source: Mapping[str, Any],
        position_field: str,
    ) -> ValueTemplate:
        """The template of rows of `schema` that share their commit time,
        position and `source` (all but its `position_field`)."""
        event = ChangeEvent(
            op=Op.READ,
            schema=schema.schema,
            table=schema.table,
            key=None,
            before=None,
            after=None,
            ts_ms=ts_ms,
            position=position,
            fingerprint=fingerprint,
            source=dict(source),
        )
        return cls(event, position_field)

    def format(self, op: Op) -> bytes:
        """A bytes %-format of the value: `fmt % (before, after, position,
        now_ms)`, rows as JSON bytes or b"null"; the hot path's own encoder."""
        fmt = self._formats.get(op)
        return self._format(op) if fmt is None else fmt

    def encode(
        self,
        op: Op,
        before: bytes,
        after: bytes,
        position: int,
        now_ms: int,
        unchanged: tuple[str, ...] = (),
    ) -> bytes:
        value = self.format(op) % (before, after, position, now_ms)
        if unchanged:
            # the list is the value's last field, after ts_ms, as in `encode_value`
            value = value[:-1] + b',"unchanged":' + values.dumps(unchanged) + b"}"
        return value

    def _format(self, op: Op) -> bytes:
        probe = replace(
            self._event,
            op=op,
            before=_HOLE_ROW,  # type: ignore[arg-type]
            after=_HOLE_ROW,  # type: ignore[arg-type]
            source={**self._event.source, self._position_field: _HOLE_POSITION},
            unchanged=(),
        )
        encoded = encode_value(probe, now_ms=_HOLE_NOW).replace(b"%", b"%%")
        row, position, now = (values.dumps(hole) for hole in (_HOLE_ROW, _HOLE_POSITION, _HOLE_NOW))
        if encoded.count(row) != 2 or encoded.count(position) != 1:
            raise ValueError(
                f"source field {self._position_field!r} is written by the envelope itself;"
                " give a field of the source's own (e.g. lsn) as the position field"
            )
        fmt = encoded.replace(row, b"%b").replace(position, b"%d").replace(now, b"%d")
        self._formats[op] = fmt
        return fmt


class Envelope(NamedTuple):
    """A decoded value, values still in their wire form (see cdc.values).

    A named tuple: a sink decodes every message, and a frozen dataclass costs
    about a microsecond more to build."""

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
        _OPS[raw["op"]],
        raw["before"],
        raw["after"],
        raw["source"],
        raw["ts_ms"],
        tuple(raw.get("unchanged") or ()),
    )


def decode_key(data: bytes | None) -> Row | None:
    return None if data is None else orjson.loads(data)
