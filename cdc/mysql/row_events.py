"""Binlog rows events to change events: the MySQL stream's hot path."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from cdc.events import ChangeEvent, Op
from cdc.mysql import catalog, schema
from cdc.mysql.position import BinlogPosition
from cdc.mysql.rows import RowDecoder, RowPair
from cdc.schemas import TableSchema


def schema_of(decoder: RowDecoder, table: catalog.MyTable) -> TableSchema:
    key = decoder.primary_key or table.primary_key
    return schema.table_schema(decoder.schema, decoder.table, decoder.columns, key)


def row_events(
    table_schema: TableSchema,
    fingerprint: str,
    op: Op,
    pairs: list[RowPair],
    first: int,
    ts_ms: int,
    position: BinlogPosition,
    source: dict[str, Any],
) -> Iterator[ChangeEvent]:
    """The events of one rows event from its row `first` on (the hot path: no
    per-row helper calls beyond the event itself)."""
    schema_name, table, key_names = table_schema.schema, table_schema.table, table_schema.key
    update = op is Op.UPDATE
    for index in range(first, len(pairs)):
        before, after = pairs[index]
        row_source = {**source, "row": index}
        if update and before and after and any(before[k] != after[k] for k in key_names):
            # a key change: delete the old key, insert the new one
            yield ChangeEvent(
                op=Op.DELETE,
                schema=schema_name,
                table=table,
                key={k: before[k] for k in key_names},
                before=before,
                after=None,
                ts_ms=ts_ms,
                position=position,
                fingerprint=fingerprint,
                source=row_source,
            )
            yield ChangeEvent(
                op=Op.CREATE,
                schema=schema_name,
                table=table,
                key={k: after[k] for k in key_names},
                before=None,
                after=after,
                ts_ms=ts_ms,
                position=position,
                fingerprint=fingerprint,
                source=row_source,
            )
            continue
        row = after if after is not None else before
        assert row is not None
        yield ChangeEvent(
            op=op,
            schema=schema_name,
            table=table,
            key={k: row[k] for k in key_names},
            before=before,
            after=after,
            ts_ms=ts_ms,
            position=position,
            fingerprint=fingerprint,
            source=row_source,
        )
