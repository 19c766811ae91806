"""Snapshot rows to `op: r` change events, or straight to their wire messages."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

from cdc import values
from cdc.envelope import ValueTemplate
from cdc.events import ChangeEvent, EncodedChanges, Op
from cdc.position import Position
from cdc.schemas import TableSchema


def read_events(
    schema: TableSchema,
    converters: Sequence[Callable[[Any], Any] | None],
    rows: Iterable[Sequence[Any]],
    ts_ms: int,
    position: Position,
    source: Mapping[str, Any],
) -> Iterator[ChangeEvent]:
    """One event per raw row."""
    names = schema.column_names
    key_names = schema.key
    fingerprint = schema.fingerprint  # hashes the whole schema: once per call, not per row
    for row in _converted(names, converters, rows):
        yield ChangeEvent(
            op=Op.READ,
            schema=schema.schema,
            table=schema.table,
            key={k: row[k] for k in key_names},
            before=None,
            after=row,
            ts_ms=ts_ms,
            position=position,
            fingerprint=fingerprint,
            source=source,
        )


def read_messages(
    schema: TableSchema,
    converters: Sequence[Callable[[Any], Any] | None],
    rows: Iterable[Sequence[Any]],
    ts_ms: int,
    position: Position,
    source: Mapping[str, Any],
    position_field: str,
    now_ms: int,
) -> EncodedChanges:
    """`read_events` as the publisher would encode them (at `now_ms`), with
    no event object per row: the envelope is formatted once for the chunk and
    each row fills in its JSON. `position_field` names the int field of
    `source` that the envelope does not write itself (e.g. `pos`)."""
    names = schema.column_names
    key_names = schema.key
    fingerprint = schema.fingerprint
    template = ValueTemplate.of_rows(schema, fingerprint, ts_ms, position, source, position_field)
    read = template.format(Op.READ)  # `read % (b"null", row JSON, source[position_field], now_ms)`
    at, dumps = int(source[position_field]), values.dumps
    messages = []
    for row in _converted(names, converters, rows):
        key = dumps({k: row[k] for k in key_names})
        messages.append((Op.READ, key, read % (b"null", dumps(row), at, now_ms)))
    return EncodedChanges(schema.schema, schema.table, fingerprint, messages)


def _converted(
    names: Sequence[str],
    converters: Sequence[Callable[[Any], Any] | None],
    rows: Iterable[Sequence[Any]],
) -> Iterator[dict[str, Any]]:
    """Each raw row as a dict; a None converter keeps the driver's value."""
    for raw in rows:
        yield {
            name: value if value is None or conv is None else conv(value)
            for name, conv, value in zip(names, converters, raw, strict=True)
        }
