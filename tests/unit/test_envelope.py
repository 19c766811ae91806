"""Envelope, topic names and schema fingerprints."""

from __future__ import annotations

from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Any

import orjson
import pytest

from cdc import envelope, values
from cdc.events import ChangeEvent, Op
from cdc.schemas import Column, TableSchema
from cdc.topics import schemas_topic, table_topic


@dataclass(frozen=True, order=True)
class Lsn:
    value: int

    def to_json(self) -> dict[str, Any]:
        return {"lsn": self.value}


def update_event() -> ChangeEvent:
    return ChangeEvent(
        op=Op.UPDATE,
        schema="public",
        table="accounts",
        key={"tenant": 1, "id": 2},
        before={"tenant": 1, "id": 2, "balance": Decimal("1.00")},
        after={"tenant": 1, "id": 2, "balance": Decimal("2.50")},
        ts_ms=1_700_000_000_123,
        position=Lsn(42),
        fingerprint="abc",
        txid=77,
        source={"connector": "postgresql", "db": "app", "lsn": 42},
        unchanged=("doc",),
    )


def test_value_is_a_debezium_envelope() -> None:
    raw = orjson.loads(envelope.encode_value(update_event()))
    assert set(raw) == {"before", "after", "source", "op", "ts_ms", "unchanged"}
    assert raw["op"] == "u"
    assert raw["after"]["balance"] == "2.50"
    assert raw["unchanged"] == ["doc"]
    assert raw["source"] == {
        "connector": "postgresql",
        "db": "app",
        "lsn": 42,
        "schema": "public",
        "table": "accounts",
        "ts_ms": 1_700_000_000_123,
        "txId": 77,
        "snapshot": "false",
    }


def test_decode_reads_back_what_encode_wrote() -> None:
    decoded = envelope.decode_value(envelope.encode_value(update_event()))
    assert decoded.op is Op.UPDATE
    assert decoded.before == {"tenant": 1, "id": 2, "balance": "1.00"}
    assert decoded.unchanged == ("doc",)


def test_key_keeps_key_column_order() -> None:
    assert envelope.encode_key(update_event()) == b'{"tenant":1,"id":2}'
    assert envelope.decode_key(b'{"tenant":1,"id":2}') == {"tenant": 1, "id": 2}


def test_topic_names() -> None:
    assert table_topic("shop", "public", "orders") == "shop.public.orders"
    assert schemas_topic("shop") == "shop.__schemas"
    odd = table_topic("shop", "public", 'my "table" ü')
    assert odd.startswith("shop.public.my__table___")
    assert odd != table_topic("shop", "public", 'my "table" u')
    assert len(table_topic("p", "s", "x" * 400)) == 249


def test_fingerprint_changes_with_the_shape_only() -> None:
    columns = (Column("id", "bigint", False), Column("name", "text"))
    one = TableSchema("postgresql", "public", "t", columns, ("id",))
    same = TableSchema("postgresql", "public", "t", columns, ("id",))
    retyped = TableSchema(
        "postgresql", "public", "t", (columns[0], Column("name", "varchar(10)")), ("id",)
    )
    assert one.fingerprint == same.fingerprint
    assert one.fingerprint != retyped.fingerprint
    assert TableSchema.from_json(one.to_json()) == one


def test_template_writes_the_bytes_encode_value_writes() -> None:
    # a table name with "%" and "\x00" must not disturb the template's holes
    base = replace(update_event(), table="100%b %d \x00odd", unchanged=())
    template = envelope.ValueTemplate(base, "lsn")
    for op, before, after, unchanged in [
        (Op.CREATE, None, {"id": 2, "note": "50%"}, ()),
        (Op.UPDATE, {"id": 2}, {"id": 2, "balance": Decimal("2.50")}, ("doc", "pic")),
        (Op.DELETE, {"id": 2, "balance": None}, None, ()),
    ]:
        event = replace(
            base,
            op=op,
            before=before,
            after=after,
            source={**base.source, "lsn": 9_000_000_001},
            unchanged=unchanged,
        )
        encoded = template.encode(
            op,
            b"null" if before is None else values.dumps(before),
            b"null" if after is None else values.dumps(after),
            9_000_000_001,
            1_700_000_000_999,
            unchanged,
        )
        assert encoded == envelope.encode_value(event, now_ms=1_700_000_000_999)


def test_template_position_must_be_a_field_of_the_source() -> None:
    template = envelope.ValueTemplate(update_event(), "table")
    with pytest.raises(ValueError, match="'table' is written by the envelope itself"):
        template.format(Op.CREATE)
