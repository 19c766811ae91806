"""pgoutput row changes to wire messages: the same bytes as the envelope of
the equivalent change event (cdc.postgres.changes)."""

from __future__ import annotations

import struct
from decimal import Decimal
from typing import Any

import pytest

from cdc import envelope, values
from cdc.events import ChangeEvent, Op
from cdc.postgres.changes import ChangeBatch, RelationState, Transaction
from cdc.postgres.copy_text import split_row
from cdc.postgres.pgoutput import PgoutputError
from cdc.postgres.pgoutput_messages import UNCHANGED, Delete, Insert, TupleData, Update
from cdc.postgres.position import PgPosition
from cdc.schemas import Column, TableSchema

SCHEMA = TableSchema(
    "postgresql",
    "public",
    "items",
    (Column("id", "bigint", False), Column('odd "name"', "text"), Column("price", "numeric")),
    ("id",),
)
TX = Transaction(xid=7, commit_ms=1_700_000_000_123)


def decimal(data: bytes) -> Decimal:
    # a Python value, which the envelope encodes (numeric's own converter
    # passes the text through)
    return Decimal(data.decode())


def state() -> RelationState:
    return RelationState(
        schema=SCHEMA,
        names=SCHEMA.column_names,
        converters=(int, bytes.decode, decimal),
        key=("id",),
        source={"connector": "postgresql", "db": "app"},
        fingerprint=SCHEMA.fingerprint,
    )


def expected(
    op: Op,
    key: dict[str, Any],
    before: dict[str, Any] | None,
    after: dict[str, Any] | None,
    unchanged: tuple[str, ...] = (),
) -> tuple[Op, bytes, bytes]:
    event = ChangeEvent(
        op=op,
        schema="public",
        table="items",
        key=key,
        before=before,
        after=after,
        ts_ms=TX.commit_ms,
        position=PgPosition(42),
        fingerprint=SCHEMA.fingerprint,
        txid=TX.xid,
        source={"connector": "postgresql", "db": "app", "lsn": 42},
        unchanged=unchanged,
    )
    return op, values.dumps(key), envelope.encode_value(event, now_ms=5)


def encode(message: Insert | Update | Delete) -> list[tuple[Op, bytes, bytes]]:
    out: list[tuple[Op, bytes, bytes]] = []
    state().encode(message, TX, 42, 5, out)
    return out


def test_insert() -> None:
    row = {"id": 1, 'odd "name"': None, "price": Decimal("1.50")}
    assert encode(Insert(1, (b"1", None, b"1.50"))) == [expected(Op.CREATE, {"id": 1}, None, row)]


def insert_message(new: TupleData) -> bytes:
    """A pgoutput Insert of relation 1, as the server sends it."""
    columns = b"".join(
        b"n" if v is None else b"u" if v is UNCHANGED else b"t" + struct.pack("!I", len(v)) + v
        for v in new
    )
    return b"I" + struct.pack("!I", 1) + b"N" + struct.pack("!H", len(new)) + columns


@pytest.mark.parametrize(
    "new",
    [
        (b"1", None, b"1.50"),
        (
            b"-9223372036854775808",
            '" \\ \t \x01 été 表'.encode(),
            None,
        ),
        (b"2", b"", b"NaN"),
        (b"3", UNCHANGED, b"1"),  # never sent in an insert: the generic path lists it
    ],
)
def test_insert_from_the_message_bytes_is_the_decoded_inserts(new: TupleData) -> None:
    from_bytes: list[tuple[Op, bytes, bytes]] = []
    state().encode_insert(insert_message(new), 1, TX, 42, 5, from_bytes)
    assert from_bytes == encode(Insert(1, new))


def test_a_malformed_insert_is_a_decoding_error() -> None:
    message = insert_message((b"1", b"x", b"1"))
    with pytest.raises(PgoutputError):
        state().encode_insert(message[:-1], 1, TX, 42, 5, [])
    with pytest.raises(PgoutputError):
        state().encode_insert(message + b"\x00", 1, TX, 42, 5, [])


def test_update_with_an_unchanged_toast_value() -> None:
    after = {"id": 1, "price": Decimal("2")}
    assert encode(Update(1, (b"1", UNCHANGED, b"2"))) == [
        expected(Op.UPDATE, {"id": 1}, None, after, ('odd "name"',))
    ]


def test_key_change_is_a_delete_and_an_insert() -> None:
    old = {"id": 1, 'odd "name"': None, "price": None}
    new = {"id": 2, 'odd "name"': "x", "price": Decimal("3")}
    assert encode(Update(1, (b"2", b"x", b"3"), key=(b"1", None, None))) == [
        expected(Op.DELETE, {"id": 1}, old, None),
        expected(Op.CREATE, {"id": 2}, None, new),
    ]


def test_delete_by_key() -> None:
    assert encode(Delete(1, key=(b"1", None, None))) == [
        expected(Op.DELETE, {"id": 1}, {"id": 1}, None)
    ]


def test_batch_holds_one_relation_and_at_most_its_limit() -> None:
    batch = ChangeBatch(limit=2)
    first, second = state(), state()
    assert batch.add(first, Insert(1, (b"1", None, b"1")), TX, 1) == []
    assert batch.add(first, Insert(1, (b"2", None, b"1")), TX, 2) == []
    full = batch.add(first, Insert(1, (b"3", None, b"1")), TX, 3)  # over the limit
    assert [len(b.messages) for b in full] == [2]
    switched = batch.add(second, Insert(1, (b"4", None, b"1")), TX, 4)  # another relation
    assert [[key for _, key, _ in b.messages] for b in switched] == [[b'{"id":3}']]
    assert [b.fingerprint for b in batch.take()] == [SCHEMA.fingerprint]
    assert batch.take() == []


def test_snapshot_rows_from_copy_text_are_read_events() -> None:
    """A snapshot's COPY lines, split, encode as `op: r` events would: the
    row and key JSON of the stream's encoder, the source naming the LSN the
    stream starts at."""
    lines = [
        b"1\t\\N\t1.50",
        # COPY escapes: a backslash, a tab, a control character
        b'-9223372036854775808\t" \\\\ \\t \\001 \xc3\xa9t\xc3\xa9\tNaN',
        b"2\t\tNaN",
    ]
    rows = [split_row(line) for line in lines]
    started_ms = 1_700_000_000_999

    def read_event(row: dict[str, Any]) -> tuple[Op, bytes, bytes]:
        key = {"id": row["id"]}
        event = ChangeEvent(
            op=Op.READ,
            schema="public",
            table="items",
            key=key,
            before=None,
            after=row,
            ts_ms=started_ms,
            position=PgPosition(42),
            fingerprint=SCHEMA.fingerprint,
            source={"connector": "postgresql", "db": "app", "lsn": 42},
        )
        return Op.READ, values.dumps(key), envelope.encode_value(event, now_ms=5)

    assert state().encode_reads(rows, 42, started_ms, 5) == [
        read_event({"id": 1, 'odd "name"': None, "price": Decimal("1.50")}),
        read_event(
            {
                "id": -9223372036854775808,
                'odd "name"': '" \\ \t \x01 été',
                "price": Decimal("NaN"),
            }
        ),
        read_event({"id": 2, 'odd "name"': "", "price": Decimal("NaN")}),
    ]
