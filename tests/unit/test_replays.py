"""Where a change stood at its source, as `sinks.replays` reads it from the
messages cdc publishes, and which positions come before which. What the sink
then does with a replay is in tests/unit/test_plan.py."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from confluent_kafka import Message

from cdc.envelope import encode_value
from cdc.events import ChangeEvent, Op
from cdc.schemas import SCHEMA_HEADER, Column, TableSchema
from sinks.change_decoding import decode_change
from sinks.collapse import collapse
from sinks.replays import Position, before, message_position, message_positions, source_position

SCHEMA = TableSchema(
    "postgresql", "public", "items", (Column("id", "integer"), Column("doc", "text")), ("id",)
)


@dataclass(frozen=True, order=True)
class Resume:
    """A source's resume token: not part of the message."""

    def to_json(self) -> dict[str, Any]:
        return {}


def value(op: Op, source: dict[str, Any], unchanged: tuple[str, ...] = ()) -> bytes:
    """A message value as the sources publish it (`cdc.envelope`)."""
    event = ChangeEvent(
        op=op,
        schema="public",
        table="items",
        key={"id": 1},
        before={"id": 1},
        after=None if op is Op.DELETE else {"id": 1},
        ts_ms=1,
        position=Resume(),
        fingerprint=SCHEMA.fingerprint,
        txid=7,
        source=source,
        unchanged=unchanged,
    )
    return encode_value(event)


PG = {"connector": "postgresql", "db": "app", "lsn": 0x16B3748}
MARIADB = {"connector": "mysql", "db": "app", "file": "mysql-bin.000012", "pos": 4711, "row": 3}


@pytest.mark.parametrize(
    ("source", "position"),
    [
        (PG, 0x16B3748),
        # the transaction's start: its rows share it
        (MARIADB, ("mysql-bin", 12, 4711)),
    ],
)
def test_the_position_a_source_published(source: dict[str, Any], position: Position) -> None:
    assert message_position(value(Op.UPDATE, source, ("doc",))) == position
    assert message_position(value(Op.DELETE, source)) == position


@pytest.mark.parametrize(
    "data", [None, b"not json", b"[1]", b'{"source": null}', b'{"source": {"pos": 4}}']
)
def test_no_position_where_a_message_names_none(data: bytes | None) -> None:
    assert message_position(data) is None


@pytest.mark.parametrize(
    ("earlier", "later", "is_before"),
    [
        (100, 200, True),
        (200, 200, False),  # the same change again
        (300, 200, False),
        (("mysql-bin", 12, 900), ("mysql-bin", 13, 4), True),
        # numbered files go on past six digits
        (("mysql-bin", 999_999, 900), ("mysql-bin", 1_000_000, 4), True),
        (("mysql-bin", 12, 4711), ("mysql-bin", 12, 4711), False),  # one transaction
        # positions of other binlog series, or another kind of source: not ordered
        (("other-bin", 1, 4), ("mysql-bin", 12, 4711), False),
        (("mysql-bin", 12, 4711), ("other-bin", 13, 4), False),
        (100, ("mysql-bin", 12, 4711), False),
    ],
)
def test_which_position_is_before_which(
    earlier: Position, later: Position, is_before: bool
) -> None:
    assert before(earlier, later) is is_before


def test_source_position_of_an_unnumbered_binlog_is_unknown() -> None:
    assert source_position({"file": "binlog", "pos": 4}) is None


def test_a_key_state_s_position_is_its_last_change_s() -> None:
    """An update then a delete of one key in a batch: the delete's position,
    though the state names its first change."""
    changes, sources = [], {}
    for offset, (op, lsn) in enumerate([(Op.UPDATE, 200), (Op.DELETE, 300)], 40):
        data = value(op, {**PG, "lsn": lsn}, ("doc",) if op is Op.UPDATE else ())
        headers = [(SCHEMA_HEADER, SCHEMA.fingerprint.encode())]
        msg = Message(topic="p.public.items", partition=1, offset=offset, value=data)
        where = ("p.public.items", 1, offset)
        change = decode_change(headers, b'{"id": 1}', data, lambda _: SCHEMA, where)
        changes.append(change)
        sources[id(change)] = msg
    [[batch]] = list(collapse(changes))
    position_of = message_positions(changes, sources)
    assert position_of(batch.keys[(1,)]) == 300
