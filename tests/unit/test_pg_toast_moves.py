"""A key change whose new row pgoutput sends with unchanged TOAST values
(cdc.postgres.changes, cdc.postgres.current_row): the insert under the new
key carries every column, read from the table when the old tuple was the key
only; a row gone from its new key by then is NULL there, or no insert at all
when a column of them is NOT NULL."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson

from cdc.events import Op
from cdc.postgres.changes import RelationState, Transaction
from cdc.postgres.current_row import ColumnRef, MovedRows
from cdc.postgres.pgoutput_messages import UNCHANGED, Update
from cdc.schemas import Column, TableSchema

TX = Transaction(xid=7, commit_ms=1_700_000_000_123)
REFS = (ColumnRef(1, 20, -1), ColumnRef(2, 23, -1), ColumnRef(3, 25, -1))


class Table:
    """The source table as the reader finds it now: rows by their key text."""

    def __init__(self, rows: dict[str, list[bytes | None]]) -> None:
        self.rows = rows
        self.reads: list[tuple[int, list[tuple[ColumnRef, str]], list[ColumnRef], int]] = []

    def read(
        self,
        oid: int,
        key: Sequence[tuple[ColumnRef, str]],
        columns: Sequence[ColumnRef],
        xid: int,
    ) -> list[bytes | None] | None:
        self.reads.append((oid, list(key), list(columns), xid))
        row = self.rows.get(key[0][1])
        return None if row is None else [row[REFS.index(c)] for c in columns]


def state(reader: Table, body_nullable: bool = True) -> RelationState:
    columns = (
        Column("id", "bigint", False),
        Column("qty", "integer"),
        Column("body", "text", body_nullable),
    )
    schema = TableSchema("postgresql", "public", "items", columns, ("id",))
    converters = (int, int, bytes.decode)
    not_null = frozenset(c.name for c in columns if not c.nullable)
    return RelationState(
        schema=schema,
        names=schema.column_names,
        converters=converters,
        key=("id",),
        source={"connector": "postgresql", "db": "app"},
        fingerprint=schema.fingerprint,
        moved=MovedRows(reader, 16384, schema.column_names, converters, REFS, ("id",), not_null),
    )


def changes(relation: RelationState, message: Update) -> list[tuple[Op, Any, dict[str, Any]]]:
    """(op, key, value) of each message the change makes."""
    out: list[tuple[Op, bytes, bytes]] = []
    relation.encode(message, TX, 42, 5, out)
    return [(op, orjson.loads(key), orjson.loads(value)) for op, key, value in out]


MOVE = Update(16384, (b"2", b"5", UNCHANGED), key=(b"1", None, None))


def test_a_moved_rows_unchanged_value_is_read_by_its_new_key() -> None:
    table = Table({"2": [b"2", b"5", b"a long body"]})
    (delete, create) = changes(state(table), MOVE)
    assert (delete[0], delete[1]) == (Op.DELETE, {"id": 1})
    assert (create[0], create[1]) == (Op.CREATE, {"id": 2})
    assert create[2]["after"] == {"id": 2, "qty": 5, "body": "a long body"}
    assert "unchanged" not in create[2]
    assert table.reads == [(16384, [(REFS[0], "2")], [REFS[2]], TX.xid)]


def test_a_row_gone_from_its_new_key_is_inserted_with_null_there() -> None:
    (_, create) = changes(state(Table({})), MOVE)
    assert create[2]["after"] == {"id": 2, "qty": 5, "body": None}
    assert "unchanged" not in create[2]


def test_a_row_gone_from_its_new_key_with_a_not_null_column_is_not_inserted() -> None:
    assert [op for op, _, _ in changes(state(Table({}), body_nullable=False), MOVE)] == [Op.DELETE]


def test_an_update_that_keeps_its_key_reads_nothing() -> None:
    table = Table({"1": [b"1", b"5", b"a long body"]})
    (update,) = changes(state(table), Update(16384, (b"1", b"5", UNCHANGED)))
    assert update[0] == Op.UPDATE
    assert update[2]["unchanged"] == ["body"]
    assert table.reads == []


def test_an_unchanged_key_column_comes_from_the_old_key() -> None:
    # a key column stored out of line: the new row lacks it, the old key has it
    new = Update(16384, (UNCHANGED, b"6", b"new body"), key=(b"1", None, None))
    table = Table({})
    (update,) = changes(state(table), new)
    assert (update[0], update[1]) == (Op.UPDATE, {"id": 1})
    assert update[2]["after"] == {"id": 1, "qty": 6, "body": "new body"}
    assert table.reads == []
