"""Which batches the sink may insert straight (sinks.inserts.scan), on messages
as the source encodes them. Whether each message is a new row the target's
encoder decides (tests/unit/test_copytext.py)."""

from __future__ import annotations

from dataclasses import replace

import pytest
from confluent_kafka import Message

from cdc import envelope
from cdc.errors import TransientError
from cdc.events import ChangeEvent, Op
from cdc.schemas import SCHEMA_HEADER, Column, TableSchema
from sinks import inserts
from tests.unit.test_envelope import Lsn

ITEMS = TableSchema(
    "postgresql", "public", "items", (Column("id", "integer"), Column("name", "text")), ("id",)
)
ITEMS_WIDER = replace(ITEMS, columns=(*ITEMS.columns, Column("extra", "text")))
NOTES = TableSchema("postgresql", "app", "notes", (Column("id", "integer"),), ("id",))


class Schemas:
    def __init__(self, *known: TableSchema) -> None:
        self._known = {s.fingerprint.encode(): s for s in known}

    def get(self, fingerprint: bytes) -> TableSchema:
        if fingerprint not in self._known:
            raise TransientError("not on the schemas topic yet")
        return self._known[fingerprint]


def message(
    op: Op,
    row_id: int,
    offset: int,
    schema: TableSchema = ITEMS,
    partition: int = 0,
    unchanged: tuple[str, ...] = (),
    fingerprint: str | None = None,
) -> Message:
    row = {"id": row_id, "name": f"n{row_id}"} if schema.table == "items" else {"id": row_id}
    event = ChangeEvent(
        op=op,
        schema=schema.schema,
        table=schema.table,
        key={"id": row_id},
        before=None if op in (Op.CREATE, Op.READ) else row,
        after=None if op is Op.DELETE else row,
        ts_ms=1_700_000_000_000 + offset,
        position=Lsn(offset),
        fingerprint=fingerprint or schema.fingerprint,
        txid=None,
        source={"connector": "postgresql"},
        unchanged=unchanged,
    )
    return Message(
        topic=f"p.{schema.schema}.{schema.table}",
        partition=partition,
        offset=offset,
        key=envelope.encode_key(event),
        value=envelope.encode_value(event),
        headers=[(SCHEMA_HEADER, event.fingerprint.encode())],
    )


def test_new_rows_of_several_tables_become_one_batch_each() -> None:
    messages = [
        message(Op.READ, 1, 10),
        message(Op.CREATE, 1, 3, NOTES),
        message(Op.CREATE, 2, 11, partition=1),
        message(Op.READ, 3, 12),
    ]
    scanned = inserts.scan(messages, Schemas(ITEMS, NOTES))
    assert scanned is not None
    batches, offsets = scanned
    assert [(b.target, b.schema) for b in batches] == [
        (("public", "items"), ITEMS),
        (("app", "notes"), NOTES),
    ]
    assert batches[0].values == [messages[i].value() for i in (0, 2, 3)]
    assert batches[1].values == [messages[1].value()]
    assert offsets == {("p.public.items", 0): 13, ("p.public.items", 1): 12, ("p.app.notes", 0): 4}


@pytest.mark.parametrize(
    "odd_one",
    [
        message(Op.CREATE, 5, 20, ITEMS_WIDER),  # the table changed inside the batch
        message(Op.CREATE, 5, 20, fingerprint="0123456789abcdef"),  # a schema not known yet
        Message(topic="p.public.items", partition=0, offset=20, key=b'{"id":5}', value=None),
        Message(topic="p.public.items", partition=0, offset=20, key=None, value=b"{}"),
        Message(topic="p.public.items", partition=0, offset=20, key=b'{"id":5}', value=b"{}"),
    ],
)
def test_any_other_message_sends_the_batch_the_planned_way(odd_one: Message) -> None:
    messages = [message(Op.READ, 1, 18), message(Op.CREATE, 2, 19), odd_one]
    assert inserts.scan(messages, Schemas(ITEMS, ITEMS_WIDER)) is None
