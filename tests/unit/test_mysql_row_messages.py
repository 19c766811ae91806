"""The MySQL stream's messages (cdc.mysql.row_events.RowMessages) are the
bytes the publisher writes for the equivalent change events: one per row,
a key change as a delete and a create, rows a resumed transaction already
published left out."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

import pytest

from cdc import envelope
from cdc.events import ChangeEvent, Op
from cdc.mysql.position import BinlogPosition
from cdc.mysql.row_events import RowMessages
from cdc.schemas import Column, TableSchema

SCHEMA = TableSchema(
    "mysql",
    "shop",
    "orders",
    (
        Column("id", "int"),
        Column("name", "varchar(20)"),
        Column("at", "datetime(6)"),
        Column("amount", "decimal(10,2)"),
    ),
    ("id",),
)
POSITION = BinlogPosition("mariadb-bin.000003", 1234, "0-1-77")
SOURCE = {
    "connector": "mysql",
    "db": "shop",
    "server_id": 1,
    "file": "mariadb-bin.000003",
    "pos": 1234,
    "gtid": "0-1-77",
}
NOW_MS = 1_800_000_000_000


def row(row_id: int, name: str = "n") -> dict[str, Any]:
    return {"id": row_id, "name": name, "at": datetime(2024, 5, 1, 12), "amount": Decimal("9.50")}


def expected(op: Op, before: Any, after: Any, index: int) -> tuple[Op, bytes, bytes]:
    keyed = after if after is not None else before
    event = ChangeEvent(
        op=op,
        schema=SCHEMA.schema,
        table=SCHEMA.table,
        key={"id": keyed["id"]},
        before=before,
        after=after,
        ts_ms=1_700_000_000_000,
        position=POSITION,
        fingerprint=SCHEMA.fingerprint,
        source={**SOURCE, "row": index},
    )
    key = envelope.encode_key(event)
    assert key is not None
    return op, key, envelope.encode_value(event, now_ms=NOW_MS)


def messages(
    op: Op, pairs: list[Any], first: int = 0, encoder: RowMessages | None = None
) -> list[tuple[Op, bytes, bytes]]:
    encoded = (encoder or RowMessages())(
        SCHEMA, SCHEMA.fingerprint, op, pairs, first, 1_700_000_000_000, POSITION, SOURCE, NOW_MS
    )
    assert (encoded.schema, encoded.table, encoded.fingerprint) == (
        SCHEMA.schema,
        SCHEMA.table,
        SCHEMA.fingerprint,
    )
    return encoded.messages


@pytest.mark.parametrize("op", [Op.CREATE, Op.DELETE])
def test_inserts_and_deletes_are_the_events_bytes(op: Op) -> None:
    rows = [row(1), row(2, 'tab\t"quoted"'), row(3)]
    pairs = [(None, r) if op is Op.CREATE else (r, None) for r in rows]
    assert messages(op, pairs) == [
        expected(op, before, after, i) for i, (before, after) in enumerate(pairs)
    ]


def test_an_update_is_one_message_and_a_key_change_a_delete_and_a_create() -> None:
    pairs = [(row(1, "old"), row(1, "new")), (row(2), row(20))]
    assert messages(Op.UPDATE, pairs) == [
        expected(Op.UPDATE, row(1, "old"), row(1, "new"), 0),
        expected(Op.DELETE, row(2), None, 1),
        expected(Op.CREATE, None, row(20), 1),
    ]


def test_rows_a_resumed_transaction_published_are_left_out() -> None:
    pairs = [(None, row(i)) for i in range(4)]
    assert messages(Op.CREATE, pairs, first=3) == [expected(Op.CREATE, None, row(3), 3)]


def test_each_transaction_writes_its_own_position_and_time() -> None:
    encoder = RowMessages()
    messages(Op.CREATE, [(None, row(1))], encoder=encoder)
    later = {**SOURCE, "file": "mariadb-bin.000004", "pos": 99, "gtid": "0-1-78", "server_id": 7}
    encoded = encoder(
        SCHEMA, SCHEMA.fingerprint, Op.CREATE, [(None, row(2))], 0, 1_700_000_000_500,
        BinlogPosition("mariadb-bin.000004", 99, "0-1-78"), later, NOW_MS,
    )  # fmt: skip
    value = envelope.decode_value(encoded.messages[0][2])
    envelope_fields = {"schema": "shop", "table": "orders", "txId": None, "snapshot": "false"}
    assert value.source == {**later, "row": 0, **envelope_fields, "ts_ms": 1_700_000_000_500}
