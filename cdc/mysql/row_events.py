"""Binlog rows events to their Kafka messages: the MySQL stream's hot path."""

from __future__ import annotations

from typing import Any

from cdc import values
from cdc.envelope import TransactionTemplate, ValueTemplate, transaction_template
from cdc.errors import SetupError
from cdc.events import EncodedChanges, Op
from cdc.mysql import catalog, schema
from cdc.mysql.position import BinlogPosition
from cdc.mysql.rows import RowDecoder, RowPair
from cdc.schemas import TableSchema

_NULL = b"null"


def schema_of(decoder: RowDecoder, table: catalog.MyTable) -> TableSchema:
    """The schema rows of `decoder`'s table map were written with. Its key is the
    table map's own; else information_schema's, read later (a key added since
    names columns older rows may not have: those rows are keyed by every column)."""
    names = {column.name for column in decoder.columns}
    key = decoder.primary_key or (table.primary_key if set(table.primary_key) <= names else ())
    return schema.table_schema(decoder.schema, decoder.table, decoder.columns, key, table.defaults)


# the source fields one transaction's rows share and the next one's change; their
# template is built once per table layout (`TransactionTemplate`)
_TX_FIELDS = ("server_id", "file", "pos", "gtid", "ts_ms")


class RowMessages:
    """Binlog rows events to their messages, with one `TransactionTemplate` per table
    layout: a transaction of one row pays for its row, not for a new envelope."""

    def __init__(self) -> None:
        self._templates: dict[tuple[str, str, str], TransactionTemplate] = {}

    def __call__(
        self,
        table_schema: TableSchema,
        fingerprint: str,
        op: Op,
        pairs: list[RowPair],
        first: int,
        ts_ms: int,
        position: BinlogPosition,
        source: dict[str, Any],
        now_ms: int,
    ) -> EncodedChanges:
        """The messages of one rows event from its row `first` on, as the
        publisher would encode their change events (processing time `now_ms`):
        the envelope is filled in once per rows event and each row fills in its
        JSON and its index (`source.row`), with no event object per row."""
        layout = (table_schema.schema, table_schema.table, fingerprint)
        transaction = self._templates.get(layout)
        if transaction is None:
            transaction = self._templates[layout] = transaction_template(
                table_schema, fingerprint, position, {**source, "row": 0}, "row", _TX_FIELDS
            )
        fields = (source["server_id"], source["file"], source["pos"], source["gtid"], ts_ms)
        return _messages(
            table_schema, fingerprint, op, pairs, first, transaction.begin(fields), now_ms
        )


def _messages(
    table_schema: TableSchema,
    fingerprint: str,
    op: Op,
    pairs: list[RowPair],
    first: int,
    template: ValueTemplate,
    now_ms: int,
) -> EncodedChanges:
    key_names = table_schema.key
    encode, dumps = template.encode, values.dumps
    update = op is Op.UPDATE
    width = len(table_schema.columns)
    messages: list[tuple[Op, bytes, bytes]] = []
    for index in range(first, len(pairs)):
        before, after = pairs[index]
        unchanged: tuple[str, ...] = ()
        if after is not None and len(after) != width:
            after, unchanged = _partial(table_schema, op, before, after)
        if update and before and after and any(before[k] != after[k] for k in key_names):
            if unchanged:
                raise _partial_error(table_schema, "moves a row to a new key")
            # a key change: delete the old key, insert the new one
            old_key = dumps({k: before[k] for k in key_names})
            messages.append(
                (Op.DELETE, old_key, encode(Op.DELETE, dumps(before), _NULL, index, now_ms))
            )
            new_key = dumps({k: after[k] for k in key_names})
            messages.append(
                (Op.CREATE, new_key, encode(Op.CREATE, _NULL, dumps(after), index, now_ms))
            )
            continue
        row = after if after is not None else before
        assert row is not None
        value = encode(
            op,
            _NULL if before is None else dumps(before),
            _NULL if after is None else dumps(after),
            index,
            now_ms,
            unchanged,
        )
        messages.append((op, dumps({k: row[k] for k in key_names}), value))
    return EncodedChanges(table_schema.schema, table_schema.table, fingerprint, messages)


def _partial(
    table_schema: TableSchema, op: Op, before: dict[str, Any] | None, after: dict[str, Any]
) -> tuple[dict[str, Any], tuple[str, ...]]:
    """A partial after image (`binlog_row_image` MINIMAL or NOBLOB in the
    writing session): an update names the columns it left out as unchanged,
    so the sink updates only those it carries, and keeps its key from the
    before image. An insert cannot be completed: its missing columns hold
    defaults only the source knows."""
    if op is not Op.UPDATE:
        raise _partial_error(table_schema, "inserts a row")
    row = {k: before[k] for k in table_schema.key if before and k in before and k not in after}
    row.update(after)
    return row, tuple(name for name in table_schema.column_names if name not in row)


def _partial_error(table_schema: TableSchema, what: str) -> SetupError:
    table = f"{table_schema.schema}.{table_schema.table}"
    return SetupError(
        f"a binlog event {what} of {table} without all its columns (binlog_row_image"
        " MINIMAL or NOBLOB in the session that wrote it)",
        "SET GLOBAL binlog_row_image = FULL and remove SET SESSION binlog_row_image from"
        f" the application; then copy {table} again (its rows written since are incomplete)"
        " and start cdc from a new snapshot of it",
    )
