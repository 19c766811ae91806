"""Keyless tables (no primary key of their own): the flag on the wire, the DDL without an
invented key, the batch left uncollapsed, and what each change does to a target table
kept as a list of rows (duplicates allowed) under each conflict policy (`sinks.keyless`)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any, cast

import pytest

from cdc.applier import ApplyResult
from cdc.changes import Change
from cdc.ddl.model import Notes, TableDef
from cdc.events import Op
from cdc.mysql import ddl as ddl_mysql
from cdc.mysql import schema as mysql_schema
from cdc.mysql.column_types import ColumnSpec
from cdc.postgres import catalog
from cdc.postgres import ddl as ddl_postgres
from cdc.postgres.types import TypeInfo, TypeRegistry
from cdc.schemas import Column, TableSchema
from sinks import keyless
from sinks.collapse import collapse
from sinks.schema_changes import Evolution

COLUMNS = (Column("a", "integer"), Column("b", "text"))
KEYLESS = TableSchema("postgresql", "public", "log", COLUMNS, ("a", "b"), keyless=True)
KEYED = replace(KEYLESS, keyless=False)
Row = dict[str, Any]


def change(op: Op, before: Row | None = None, after: Row | None = None, **kw: Any) -> Change:
    schema = kw.pop("schema", KEYLESS)
    row = after if after is not None else before
    assert row is not None
    return Change(
        op,
        schema,
        ("public", "log"),
        {n: row.get(n) for n in schema.key},
        before,
        after,
        kw.pop("unchanged", ()),
        kw.pop("ts_ms", 1),
        "topic",
        0,
        kw.pop("offset", 0),
    )


def insert(a: int | None, b: str | None) -> Change:
    return change(Op.CREATE, after={"a": a, "b": b})


def delete(a: int | None, b: str | None) -> Change:
    return change(Op.DELETE, before={"a": a, "b": b})


def update(old: tuple[int | None, str | None], new: tuple[int | None, str | None]) -> Change:
    return change(
        Op.UPDATE, before=dict(zip("ab", old, strict=True)), after=dict(zip("ab", new, strict=True))
    )


# -- on the wire -----------------------------------------------------------------------


def test_the_flag_is_on_the_wire_only_when_set() -> None:
    assert b"keyless" not in KEYED.to_json()
    assert TableSchema.from_json(KEYED.to_json()) == KEYED
    assert TableSchema.from_json(KEYLESS.to_json()) == KEYLESS
    assert KEYLESS.fingerprint != KEYED.fingerprint


class Types:
    """`TypeRegistry.info` without a server: every column an integer."""

    def info(self, oid: int, typmod: int = -1) -> TypeInfo:
        return TypeInfo(oid, "integer", "b", oid)


def pg_schema(key: tuple[str, ...], not_null: set[str], **kw: bool) -> TableSchema:
    columns = [catalog.PgColumn("a", 23, -1), catalog.PgColumn("b", 23, -1)]
    registry = cast(TypeRegistry, Types())
    return catalog.table_schema(
        registry, "public", "t", columns, key, frozenset(not_null), {}, **kw
    )


def test_postgres_tells_a_full_replica_identity_from_a_key_of_every_column() -> None:
    assert pg_schema(("a", "b"), {"a"}).keyless  # REPLICA IDENTITY FULL: b is nullable
    assert not pg_schema(("a", "b"), {"a", "b"}).keyless  # PRIMARY KEY (a, b)
    assert not pg_schema(("a",), set()).keyless
    assert pg_schema(("a", "b"), {"a", "b"}, keyless=True).keyless  # the caller knows


def test_mysql_keyless_is_a_table_whose_columns_are_no_primary_key() -> None:
    specs = [ColumnSpec(0, "a", 3, True), ColumnSpec(1, "b", 3, False)]
    keyed = [replace(spec, primary=True) for spec in specs]
    none = mysql_schema.table_schema("db", "t", specs, (), {})
    assert none.keyless and none.key == ("a", "b")
    # information_schema's `MyTable.key` (every column) and the binlog's key
    assert mysql_schema.table_schema("db", "t", specs, ("a", "b"), {}).keyless
    assert not mysql_schema.table_schema("db", "t", keyed, ("a", "b"), {}).keyless


def test_the_target_table_gets_no_invented_key() -> None:
    pg = ddl_postgres.render(TableDef.of(KEYLESS), ("public", "log"), Notes())
    my = ddl_mysql.render(TableDef.of(KEYLESS), ("db", "log"), "utf8mb4_bin", Notes())
    for statement in (pg[-1].sql, my[-1].sql):
        assert "PRIMARY KEY" not in statement
        assert "NOT NULL" not in statement
    assert "PRIMARY KEY" in ddl_postgres.render(TableDef.of(KEYED), ("p", "l"), Notes())[-1].sql


# -- the batch -------------------------------------------------------------------------


def test_a_keyless_batch_keeps_every_change_in_order() -> None:
    changes = [insert(1, "x"), insert(1, "x"), delete(1, "x"), insert(1, "x")]
    (step,) = collapse(changes)
    (batch,) = step
    assert [s.first for s in batch.keys.values()] == changes
    assert [s.row for s in batch.keys.values()] == [{"a": 1, "b": "x"}] * 2 + [
        None,
        {"a": 1, "b": "x"},
    ]


def test_a_table_turning_keyed_starts_a_step() -> None:
    keyed = change(Op.CREATE, after={"a": 1, "b": "x"}, schema=replace(KEYED, key=("a",)))
    steps = list(collapse([insert(1, "x"), keyed, insert(2, "y")]))
    assert [[len(b.keys) for b in step] for step in steps] == [[1], [1], [1]]
    assert [step[0].keys[next(iter(step[0].keys))].schema.keyless for step in steps] == [
        True,
        False,
        True,
    ]


# -- the changes on a table ------------------------------------------------------------


class Table:
    """A keyless target table: a list of rows, identical ones allowed."""

    name = "public.log"

    def __init__(self, *rows: tuple[int | None, str | None]) -> None:
        self.rows: list[Row] = [dict(zip("ab", row, strict=True)) for row in rows]
        self.inserts: list[int] = []  # rows per insert statement

    def row(self, schema: TableSchema, values: Row) -> Row:
        if values.get("a") == -1:
            raise ValueError("a: -1 does not fit")
        return dict(values)

    def insert(self, rows: list[Row]) -> None:
        self.inserts.append(len(rows))
        self.rows += rows

    def delete(self, old: Row) -> bool:
        if old in self.rows:
            self.rows.remove(old)  # the first equal row: one, never all
            return True
        return False

    def update(self, old: Row, new: Row) -> bool:
        for row in self.rows:
            if row == old:
                row.update(new)
                return True
        return False

    def apply(self, changes: list[Change], policy: str = "source-wins") -> ApplyResult:
        result = ApplyResult()
        for step in collapse(changes):
            for batch in step:
                keyless.apply(self, batch.keys.values(), policy, None, result)
        return result

    def sorted(self) -> list[tuple[Any, ...]]:
        return sorted((tuple(r.values()) for r in self.rows), key=repr)


def test_duplicates_are_rows_and_a_delete_removes_one() -> None:
    table = Table((1, "x"))
    result = table.apply([insert(1, "x"), insert(1, "x"), delete(1, "x")])
    assert table.sorted() == [(1, "x"), (1, "x")]
    assert table.inserts == [2]  # consecutive inserts go as one statement
    assert result.rows == {("public.log", "c"): 2, ("public.log", "d"): 1}
    assert not result.conflicts


def test_an_update_changes_one_of_two_duplicates_nulls_matched() -> None:
    table = Table((2, None), (2, None), (None, None))
    table.apply([update((2, None), (2, "was null")), delete(None, None)])
    assert table.sorted() == [(2, "was null"), (2, None)]


def test_a_delete_of_no_row_is_a_conflict_not_an_error() -> None:
    table = Table((1, "x"))
    result = table.apply([delete(9, "gone")])
    assert table.sorted() == [(1, "x")]
    assert result.conflicts == {("public.log", "delete_missing"): 1}
    assert result.conflict_keys == [("public.log", "delete_missing", (9, "gone"))]
    assert not result.dead


@pytest.mark.parametrize(
    ("policy", "rows", "dead"),
    [
        ("source-wins", [(1, "x"), (2, "new")], []),
        ("last-writer-wins", [(1, "x"), (2, "new")], []),
        ("target-wins", [(1, "x")], []),
        ("error", [(1, "x")], ["conflict: update_missing"]),
    ],
)
def test_an_update_of_no_row_follows_the_policy(
    policy: str, rows: list[tuple[Any, ...]], dead: list[str]
) -> None:
    table = Table((1, "x"))
    result = table.apply([update((2, "old"), (2, "new"))], policy)
    assert table.sorted() == rows
    assert result.conflicts == {("public.log", "update_missing"): 1}
    assert [reason for _, reason in result.dead] == dead


def test_changes_a_table_cannot_take_are_dead_letters_and_the_rest_applies() -> None:
    table = Table((1, "x"))
    partial = change(Op.CREATE, after={"a": 3}, unchanged=("b",))
    missing = change(Op.UPDATE, before={"a": 7, "b": "y"}, after={"a": 8}, unchanged=("b",))
    result = table.apply([insert(-1, "bad"), partial, missing, insert(2, "ok")])
    assert table.sorted() == [(1, "x"), (2, "ok")]
    assert [reason for _, reason in result.dead] == [
        "value: a: -1 does not fit",
        "a new row without all its columns",
        "update of a missing row without all its columns",
    ]


def test_the_old_values_of_an_upgraded_state_follow_a_rename() -> None:
    (step,) = collapse([delete(1, "x")])
    state = next(iter(step[0].keys.values()))
    evolution = Evolution(renamed={"b": "c"})
    assert keyless.old_values(state, evolution) == {"a": 1, "b": "x"}  # not upgraded
    state.schema = replace(KEYLESS, columns=(COLUMNS[0], Column("c", "text")))
    assert keyless.old_values(state, evolution) == {"a": 1, "c": "x"}
