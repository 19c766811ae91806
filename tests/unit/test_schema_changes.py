"""Schema changes as the sources name them and the sinks plan them."""

from __future__ import annotations

import pytest

from cdc.ddl.defaults import Default
from cdc.ddl.schema_diff import changes_between, copied_fills, fill_of, next_version
from cdc.errors import TerminalError
from cdc.mysql.ddl_events import parse_alter
from cdc.schemas import Column, ColumnChange, TableSchema
from cdc.settings_schema_changes import SchemaChangeSettings
from sinks.schema_changes import Evolution, SchemaFollower, TargetColumnInfo

V1 = TableSchema(
    "postgresql",
    "public",
    "items",
    (Column("id", "integer", False), Column("a", "text"), Column("n", "integer", False)),
    ("id",),
)


def version(*columns: Column) -> TableSchema:
    return TableSchema("postgresql", "public", "items", (V1.columns[0], *columns), ("id",))


def test_a_rename_is_not_a_drop_and_an_add() -> None:
    v2 = version(Column("b", "text"), V1.columns[2])
    assert changes_between(V1, v2, {"a": "b"}) == (ColumnChange("rename_column", "b", "a"),)
    assert changes_between(V1, v2, {}) == (
        ColumnChange("drop_column", "a"),
        ColumnChange("add_column", "b"),
    )


def test_type_changes_drops_and_adds_in_one_version() -> None:
    v2 = version(Column("n", "bigint", False), Column("c", "text", default="'d'::text"))
    assert changes_between(V1, v2, {}, "ALTER ...") == (
        ColumnChange("drop_column", "a", ddl="ALTER ..."),
        ColumnChange("alter_column_type", "n", "integer", "ALTER ..."),
        ColumnChange("add_column", "c", ddl="ALTER ..."),
    )


def test_a_first_version_and_an_unchanged_one_name_no_changes() -> None:
    assert next_version(None, V1, {}) is V1
    assert next_version(V1, V1, {}).changes == ()


def test_fingerprints_of_tables_without_defaults_or_changes_are_unchanged() -> None:
    # the fields added for schema changes stay out of the JSON when empty
    assert b"default" not in V1.to_json() and b"changes" not in V1.to_json()
    changed = next_version(V1, version(V1.columns[2]), {})
    assert TableSchema.from_json(changed.to_json()) == changed


@pytest.mark.parametrize(
    ("column", "connector", "fill"),
    [
        (Column("c", "text", default="'d'::text"), "postgresql", Default("string", "d")),
        (Column("c", "timestamptz", default="now()", fill="'2026-01-01 00:00:00+00'"),
         "postgresql", Default("string", "2026-01-01 00:00:00+00")),
        (Column("c", "int", False, fill="0"), "mysql", Default("number", "0")),
        (Column("c", "text"), "postgresql", None),
    ],
)  # fmt: skip
def test_what_the_rows_already_there_hold(
    column: Column, connector: str, fill: Default | None
) -> None:
    assert fill_of(column, connector) == fill


@pytest.mark.parametrize(
    "default", ["nextval('items_c_seq'::regclass)", "gen_random_uuid()", "now()"]
)
def test_a_volatile_default_without_a_fill_cannot_be_followed(default: str) -> None:
    with pytest.raises(ValueError, match="its own value"):
        fill_of(Column("c", "text", default=default), "postgresql")


def plan(
    schemas: list[TableSchema], target: dict[str, TargetColumnInfo], **policy: str
) -> list[tuple[str, str, str, str]]:
    follower = SchemaFollower(SchemaChangeSettings.model_validate(policy))
    steps = follower.plan("public.items", schemas, target, Evolution(), lambda s, c: c.type, True)
    return [(s.kind, s.column, s.action, s.operation) for s in steps]


TARGET = {
    "id": TargetColumnInfo("integer", False, False),
    "a": TargetColumnInfo("text", True, False),
    "n": TargetColumnInfo("integer", False, False),
}


def test_a_dropped_not_null_column_is_kept_nullable_or_dropped() -> None:
    v2 = next_version(V1, version(V1.columns[1]), {})
    assert plan([v2], TARGET) == [("drop_column", "n", "ignore", "drop_not_null")]
    assert plan([v2], TARGET, drop_column="apply") == [("drop_column", "n", "apply", "drop")]
    with pytest.raises(TerminalError, match="drop_column n"):
        plan([v2], TARGET, drop_column="stop")


def test_an_added_column_gets_its_fill_and_a_renamed_one_keeps_its_data() -> None:
    v2 = next_version(
        V1,
        version(Column("b", "text"), V1.columns[2], Column("c", "text", default="'d'")),
        {"a": "b"},
    )
    assert plan([v2], TARGET) == [
        ("rename_column", "b", "apply", "rename"),
        ("add_column", "c", "apply", "add"),
    ]


def test_rows_of_the_old_version_after_a_rename_add_nothing() -> None:
    v2 = next_version(V1, version(Column("b", "text"), V1.columns[2]), {"a": "b"})
    follower = SchemaFollower(SchemaChangeSettings())
    evolution = Evolution()
    follower.plan("public.items", [v2], TARGET, evolution, lambda s, c: c.type, True)
    renamed = {**TARGET, "b": TARGET["a"]}
    del renamed["a"]
    assert follower.plan("public.items", [V1], renamed, evolution, lambda s, c: c.type, True) == []
    assert evolution.affects(V1) and not evolution.affects(v2)


def test_mariadb_alter_forms_applications_write() -> None:
    found = parse_alter(
        "/* v2 */ ALTER TABLE `shop`.`items` ADD COLUMN x INT DEFAULT 1 AFTER id,"
        " CHANGE COLUMN `a` `b` varchar(10) NOT NULL, RENAME COLUMN c TO `d e`,"
        " ADD COLUMN IF NOT EXISTS y VARCHAR(10) DEFAULT 'p,q' FIRST, ALGORITHM=INSTANT",
        "other",
    )
    assert found is not None
    assert (found.database, found.table) == ("shop", "items")
    assert found.renamed == {"a": "b", "c": "d e"}
    unqualified = parse_alter("alter table items change n n bigint -- widen\n", "shop")
    assert unqualified is not None and unqualified.database == "shop"
    assert unqualified.renamed == {}
    assert parse_alter("INSERT INTO items VALUES (1)", "shop") is None


def test_a_volatile_default_fills_with_null_when_the_source_copies_the_rows() -> None:
    uuid = Column("u", "uuid", default="gen_random_uuid()")
    v2 = next_version(V1, version(*V1.columns[1:], uuid), {})
    copied, copy = copied_fills(v2)
    assert copy and copied.column("u").fill == "NULL"
    assert fill_of(copied.column("u"), "postgresql") == Default("null")
    assert copied_fills(next_version(V1, version(*V1.columns[1:]), {})) == (
        next_version(V1, version(*V1.columns[1:]), {}),
        False,
    )
