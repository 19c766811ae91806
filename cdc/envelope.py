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
from typing import Any, NamedTuple, Self

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
_ENVELOPE_FIELDS = ("ts_ms", "txId")  # of `source` that the envelope writes from the event


class TransactionTemplate:
    """The value formats of one table's changes, where the fields a transaction sets (its
    commit time `ts_ms`, `txId`, source fields such as a binlog position) are holes too:
    built once per table layout, so a transaction costs a %-format per op, not an
    envelope encoded and searched (which a one-row transaction paid per row).

    `begin` gives the transaction's `ValueTemplate`. `event` gives everything else
    (its op, rows, key and the `fields` it holds are ignored)."""

    __slots__ = ("_event", "_fields", "_formats", "_position_field")

    def __init__(self, event: ChangeEvent, position_field: str, fields: tuple[str, ...]) -> None:
        self._event = event
        self._position_field = position_field
        self._fields = fields
        self._formats: dict[Op, tuple[bytes, tuple[int, ...]]] = {}

    def begin(self, field_values: tuple[Any, ...]) -> ValueTemplate:
        """The template of a transaction's rows: `field_values` in `fields` order."""
        return ValueTemplate.filled(self, tuple(values.dumps(v) for v in field_values))

    def format(self, op: Op, field_json: tuple[bytes, ...]) -> bytes:
        """`ValueTemplate.format` of the transaction whose fields are `field_json`."""
        built = self._formats.get(op)
        if built is None:
            built = self._formats[op] = self._build(op)
        fmt, order = built
        return fmt % tuple(field_json[i] for i in order)

    def _build(self, op: Op) -> tuple[bytes, tuple[int, ...]]:
        """A two-level %-format: the transaction's fields fill `%b` holes and leave
        the rows' (`%%b`, `%%d`) for `ValueTemplate.encode`; and the order the
        fields appear in, which is the value's, not `fields`'."""
        markers = [f"\x00cdc field {i}\x00" for i in range(len(self._fields))]
        source: dict[str, Any] = {**self._event.source, self._position_field: _HOLE_POSITION}
        envelope_fields: dict[str, Any] = {"ts_ms": self._event.ts_ms, "txId": self._event.txid}
        for name, marker in zip(self._fields, markers, strict=True):
            (envelope_fields if name in _ENVELOPE_FIELDS else source)[name] = marker
        probe = replace(
            self._event,
            op=op,
            before=_HOLE_ROW,  # type: ignore[arg-type]
            after=_HOLE_ROW,  # type: ignore[arg-type]
            source=source,
            ts_ms=envelope_fields["ts_ms"],
            txid=envelope_fields["txId"],
            unchanged=(),
        )
        encoded = encode_value(probe, now_ms=_HOLE_NOW).replace(b"%", b"%%%%")
        row, position, now = (values.dumps(hole) for hole in (_HOLE_ROW, _HOLE_POSITION, _HOLE_NOW))
        if encoded.count(row) != 2 or encoded.count(position) != 1:
            raise ValueError(
                f"source field {self._position_field!r} is written by the envelope itself;"
                " give a field of the source's own (e.g. lsn) as the position field"
            )
        holes = [values.dumps(marker) for marker in markers]
        if any(encoded.count(hole) != 1 for hole in holes):
            raise ValueError(f"transaction fields {self._fields} must each be written once")
        order = tuple(sorted(range(len(holes)), key=lambda i: encoded.index(holes[i])))
        fmt = encoded.replace(row, b"%%b").replace(position, b"%%d").replace(now, b"%%d")
        for hole in holes:
            fmt = fmt.replace(hole, b"%b")
        return fmt, order


class ValueTemplate:
    """Value bytes of many row changes of one table in one transaction, where
    only the rows, one position field of `source` and the processing time
    differ: `encode_value` runs once per op and this fills in the holes, so a
    busy stream encodes each row without building an event or its dicts.
    Rows must already be JSON (`cdc.values.dumps`)."""

    __slots__ = ("_field_json", "_formats", "_transaction")

    def __init__(self, event: ChangeEvent, position_field: str) -> None:
        # `event` gives everything but the holes (its op, rows, key are ignored)
        self._transaction = TransactionTemplate(event, position_field, ())
        self._field_json: tuple[bytes, ...] = ()
        self._formats: dict[Op, bytes] = {}

    @classmethod
    def filled(cls, transaction: TransactionTemplate, field_json: tuple[bytes, ...]) -> Self:
        """`transaction`'s template with its fields as `field_json`."""
        template = cls.__new__(cls)
        template._transaction, template._field_json = transaction, field_json
        template._formats = {}
        return template

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
        return cls(_event_of(schema, fingerprint, ts_ms, position, source), position_field)

    def format(self, op: Op) -> bytes:
        """A bytes %-format of the value: `fmt % (before, after, position,
        now_ms)`, rows as JSON bytes or b"null"; the hot path's own encoder."""
        fmt = self._formats.get(op)
        if fmt is None:
            fmt = self._formats[op] = self._transaction.format(op, self._field_json)
        return fmt

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


def transaction_template(
    schema: TableSchema,
    fingerprint: str,
    position: Position,
    source: Mapping[str, Any],
    position_field: str,
    fields: tuple[str, ...],
) -> TransactionTemplate:
    """The `TransactionTemplate` of rows of `schema` whose `source` differs from one
    transaction to the next in `fields` (and `ts_ms`, `txId` when named). `position`:
    any of the stream's (the value does not carry it)."""
    event = _event_of(schema, fingerprint, 0, position, source)
    return TransactionTemplate(event, position_field, fields)


def _event_of(
    schema: TableSchema,
    fingerprint: str,
    ts_ms: int,
    position: Position,
    source: Mapping[str, Any],
) -> ChangeEvent:
    return ChangeEvent(
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
