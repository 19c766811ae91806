"""Snapshot rows straight to wire messages (cdc.snapshot_rows.read_messages)
are the bytes the publisher makes of the equivalent `op: r` events."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from cdc import envelope
from cdc.events import Op
from cdc.schemas import Column, TableSchema
from cdc.snapshot_rows import read_events, read_messages
from tests.unit.test_envelope import Lsn

SCHEMA = TableSchema(
    "mysql",
    "shop",
    "orders",
    (
        Column("id", "bigint unsigned", False),
        Column("at", "datetime(6)"),
        Column("total", "decimal(10,2)"),
        Column('odd "%s" name', "varchar(20)"),
    ),
    ("id",),
)
SOURCE = {"connector": "mysql", "db": "shop", "file": "binlog.000007", "pos": 4242}
ROWS = [
    (18446744073709551615, datetime(2024, 1, 5, 8, 10, 9, 250035), Decimal("92501.85"), "a\tb"),
    (2, None, Decimal("-0.50"), "été %d %s"),
]


def test_read_messages_are_the_encoded_read_events() -> None:
    converters = [None, None, None, str.upper]
    position = Lsn(4242)
    events = read_events(SCHEMA, converters, ROWS, 1_700_000_000_000, position, SOURCE)
    expected = [
        (Op.READ, envelope.encode_key(e), envelope.encode_value(e, now_ms=1_700_000_000_500))
        for e in events
    ]
    encoded = read_messages(
        SCHEMA, converters, ROWS, 1_700_000_000_000, position, SOURCE, "pos", 1_700_000_000_500
    )
    assert encoded.messages == expected
    assert (encoded.schema, encoded.table, encoded.fingerprint) == (
        "shop",
        "orders",
        SCHEMA.fingerprint,
    )
