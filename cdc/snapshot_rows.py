"""Snapshot rows to `op: r` change events, for every source."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

from cdc.events import ChangeEvent, Op
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
    """One event per raw row; a None converter keeps the driver's value."""
    names = schema.column_names
    key_names = schema.key
    fingerprint = schema.fingerprint  # hashes the whole schema: once per call, not per row
    for raw in rows:
        row = {
            name: value if value is None or conv is None else conv(value)
            for name, conv, value in zip(names, converters, raw, strict=True)
        }
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
