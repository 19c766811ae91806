"""Row transforms on hand-built changes, the `where:` language, and their config errors."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from cdc.changes import Change
from cdc.cli import main
from cdc.errors import TerminalError
from cdc.events import Op
from cdc.schemas import Column, TableSchema
from cdc.secrets import forget_secrets, redact
from cdc.settings import TransformSettings
from cdc.settings_issues import ConfigError, ConfigIssue
from cdc.settings_load import parse_settings
from transforms.base import SchemaError, Transform, TransformConfigError, TransformError
from transforms.expression import Expression, ExpressionError
from transforms.pipeline import Pipeline
from transforms.registry import build, check

KEY = "k" * 32


@pytest.fixture(autouse=True)
def _clean() -> Iterator[None]:
    forget_secrets()
    yield
    forget_secrets()


def table(
    name: str = "public.customers", connector: str = "postgresql", key: tuple[str, ...] = ("id",)
) -> TableSchema:
    schema, _, table_name = name.partition(".")
    columns = (
        Column("id", "integer", False, {"oid": 23, "kind": "b"}),
        Column("name", "text"),
        Column("region", "text"),
        Column("score", "numeric(10,2)"),
        Column("active", "boolean"),
    )
    return TableSchema(connector, schema, table_name, columns, key)


def change(
    op: Op = Op.CREATE,
    after: dict[str, Any] | None = None,
    before: dict[str, Any] | None = None,
    unchanged: tuple[str, ...] = (),
    schema: TableSchema | None = None,
) -> Change:
    schema = schema or table()
    if op is not Op.DELETE and after is None:
        after = {"id": 1, "name": "Ada", "region": "eu", "score": "12.50", "active": True}
    # copies: transforms change rows in place, and tests share their row constants
    after = dict(after) if after is not None else None
    before = dict(before) if before is not None else None
    row = after if after is not None else before
    key = {k: row[k] for k in schema.key} if row is not None and op is not Op.TRUNCATE else None
    return Change(
        op=op,
        schema=schema,
        target=(schema.schema, schema.table),
        key=key,
        before=before,
        after=after if op is not Op.DELETE else None,
        unchanged=unchanged,
        ts_ms=1_714_564_800_123,
        topic="t.public.customers",
        partition=0,
        offset=7,
    )


def one(type_: str, **options: Any) -> Transform:
    return build([TransformSettings(type=type_, **options)])[0]


def run(transform: Transform, item: Change) -> Change | None:
    return Pipeline([transform]).apply(item)


# --- the where: language -------------------------------------------------------------------


ROW = {"id": 7, "name": "O'Brien", "region": "eu", "score": "12.50", "active": True, "gone": None}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("region = 'eu'", True),
        ("region != 'eu'", False),
        ("score > 12", True),  # a numeric column's wire string against a number
        ("score >= 12.5", True),
        ("score < 12.5", False),
        ("id <= 7 and id >= 7", True),
        ("name = 'O''Brien'", True),
        ("region in ['us', 'eu']", True),
        ("region not in ['us', 'eu']", False),
        ("id in []", False),
        ("gone is null", True),
        ("gone is not null", False),
        ("active", True),
        ("not active", False),
        ("active = true", True),
        ("region = 'eu' AND Not (id = 1)", True),  # keywords in any case
        ("region = 'us' or region = 'eu' and id = 1", False),  # and binds tighter than or
        ("(region = 'us' or region = 'eu') and id = 7", True),
        ("\"name\" = 'O''Brien'", True),
        ("id = -7 or id = 7e0", True),
        ("'2024-05-01T12:00:00.000000' > '2024-05-01'", True),  # ISO text sorts by time
        ("true", True),
        # SQL's three-valued logic: unknown never passes, not unknown is unknown
        ("gone = 1", None),
        ("not gone = 1", None),
        ("gone = 1 or id = 7", True),
        ("gone = 1 and id = 8", False),
        ("gone = 1 or id = 8", None),
        ("gone in [1]", None),
        ("id in [1, null]", None),
        ("id in [7, null]", True),
        ("id not in [1, null]", None),
    ],
)
def test_where_evaluates_like_sql(text: str, expected: bool | None) -> None:
    assert Expression.parse(text).test(ROW) is expected


def test_where_lists_the_columns_it_reads() -> None:
    expression = Expression.parse("""region = 'eu' and ("my col" is null or not active)""")
    assert expression.columns == {"region", "my col", "active"}


def test_where_mysql_booleans_are_numbers() -> None:
    assert Expression.parse("active").test({"active": 1}) is True
    assert Expression.parse("active = true").test({"active": 0}) is False


@pytest.mark.parametrize(
    ("text", "row"),
    [
        ("name = 5", {"name": "abc"}),
        ("active = 'yes'", {"active": True}),
        ("meta = 1", {"meta": {"a": 1}}),
        ("meta < meta", {"meta": [1]}),
        ("name", {"name": "abc"}),
    ],
)
def test_where_rejects_mixed_kinds_per_row(text: str, row: dict[str, Any]) -> None:
    with pytest.raises(TransformError, match=r"cannot|needs a boolean"):
        Expression.parse(text).test(row)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("region == 'eu'", "unexpected '=='"),
        ("region <> 'eu'", "unexpected '<>'"),
        ("a = 1 && b = 2", "unexpected '&&'"),
        ("__import__('os').system('true')", "expected"),
        ("len(name) > 1", "expected"),
        ("score + 1 > 2", "unexpected '\\+"),
        ("a.b = 1", "unexpected '\\."),
        ("a = 1 and", "found the end"),
        ("(a = 1", "expected '\\)'"),
        ("a = 1)", "expected and, or, or the end"),
        ("a in ('x')", "expected '\\['"),
        ("a in [b]", "a column name or a value"),
        ("a = null", "never true"),
        ("'text'", "just a value"),
        ("5", "just a value"),
        ("a is 1", "expected null"),
        ("a not = 1", "expected in"),
        ("a = 'unclosed", "unexpected"),
        ("a = 1; drop table x", "unexpected ';"),
        ("a = b = c", "expected and, or, or the end"),
        ("lambda: 1", "unexpected ':"),
        ("a = `x`", "unexpected '`"),
        ("not " * 60 + "a", "nested"),
        ("(" * 60 + "a" + ")" * 60, "nested"),
    ],
)
def test_where_rejects_everything_else(text: str, message: str) -> None:
    with pytest.raises(ExpressionError, match=message):
        Expression.parse(text)


def test_where_errors_name_the_column_and_hint() -> None:
    with pytest.raises(ExpressionError) as caught:
        Expression.parse("region == 'eu'")
    assert "column 8" in caught.value.message
    assert caught.value.hint == "use ="
    with pytest.raises(ExpressionError) as caught:
        Expression.parse("lower(region) = 'eu'")
    assert caught.value.hint == "function calls are not supported"


# --- filter --------------------------------------------------------------------------------


EU = {"id": 1, "name": "Ada", "region": "eu", "score": "1", "active": True}
US = {**EU, "region": "us"}


def eu_filter() -> Transform:
    return one("filter", table="public.customers", where="region = 'eu'")


@pytest.mark.parametrize("op", [Op.CREATE, Op.READ])
def test_filter_keeps_passing_inserts_and_drops_the_others(op: Op) -> None:
    assert run(eu_filter(), change(op, EU)) is not None
    assert run(eu_filter(), change(op, US)) is None
    assert run(eu_filter(), change(op, {**EU, "region": None})) is None  # unknown: no


def test_filter_update_leaving_the_set_becomes_a_delete() -> None:
    out = run(eu_filter(), change(Op.UPDATE, US))
    assert out is not None
    assert (out.op, out.after, out.key) == (Op.DELETE, None, {"id": 1})


def test_filter_update_that_never_passed_is_dropped() -> None:
    assert run(eu_filter(), change(Op.UPDATE, US, before={**US, "name": "x"})) is None


def test_filter_update_entering_the_set_becomes_an_insert_with_unchanged_values() -> None:
    after = {k: v for k, v in EU.items() if k != "name"}
    out = run(eu_filter(), change(Op.UPDATE, after, before=US, unchanged=("name",)))
    assert out is not None
    assert out.op is Op.CREATE
    assert out.after == {**EU, "name": "Ada"} and out.unchanged == ()


def test_filter_update_staying_in_the_set_stays_an_update() -> None:
    out = run(eu_filter(), change(Op.UPDATE, EU, before=None))
    assert out is not None and out.op is Op.UPDATE
    out = run(eu_filter(), change(Op.UPDATE, EU, before=EU))
    assert out is not None and out.op is Op.UPDATE


def test_filter_keeps_deletes_and_truncates_whatever_the_row() -> None:
    assert run(eu_filter(), change(Op.DELETE, before={"id": 1})) is not None
    assert run(eu_filter(), change(Op.DELETE, before=US)) is not None
    assert run(eu_filter(), change(Op.TRUNCATE, after=None)) is not None


def test_filter_keeps_an_update_it_cannot_judge() -> None:
    # region is an unchanged TOAST value and no before carries it
    after = {k: v for k, v in US.items() if k != "region"}
    out = run(eu_filter(), change(Op.UPDATE, after, unchanged=("region",)))
    assert out is not None and out.op is Op.UPDATE and out.unchanged == ("region",)


def test_filter_leaves_other_tables_alone_and_checks_columns() -> None:
    other = table("public.orders")
    assert run(eu_filter(), change(Op.CREATE, US, schema=other)) is not None
    with pytest.raises(TerminalError, match=r"transforms\[0\]: filter: .* no column nope"):
        run(one("filter", table="public.*", where="nope = 1"), change())


def test_filter_value_errors_go_to_dead_letters() -> None:
    with pytest.raises(TransformError, match=r"transforms\[0\]: cannot compare"):
        run(one("filter", table="public.customers", where="name > 3"), change())


# --- rename_table, route -------------------------------------------------------------------


def test_rename_table_keeps_or_replaces_the_schema() -> None:
    out = run(one("rename_table", table="public.customers", to="clients"), change())
    assert out is not None and out.target == ("public", "clients")
    out = run(one("rename_table", table="public.cust*", to="crm.clients"), change(Op.TRUNCATE))
    assert out is not None and out.target == ("crm", "clients")
    assert (out.schema.schema, out.schema.table) == ("public", "customers")  # the source name
    out = run(one("rename_table", table="public.orders", to="x"), change())
    assert out is not None and out.target == ("public", "customers")


def test_route_with_placeholders() -> None:
    out = run(one("route", table="public.*", to="archive.old_{table}"), change())
    assert out is not None and out.target == ("archive", "old_customers")
    out = run(one("route", table=["x.y", "public.customers"], to="{schema}_v2.t"), change())
    assert out is not None and out.target == ("public_v2", "t")


def test_route_then_rename_table_renames_in_the_routed_schema() -> None:
    pipeline = Pipeline(
        build(
            [
                TransformSettings(type="route", table="public.customers", to="crm.customers"),
                TransformSettings(type="rename_table", table="public.customers", to="clients"),
            ]
        )
    )
    out = pipeline.apply(change())
    assert out is not None and out.target == ("crm", "clients")


# --- rename_column, columns ----------------------------------------------------------------


def test_rename_column_renames_everywhere_including_the_key() -> None:
    rename = one("rename_column", table="public.customers", **{"from": "id", "to": "customer_id"})
    out = run(rename, change(Op.UPDATE, EU, before=EU, unchanged=("id",)))
    assert out is not None
    assert out.key == {"customer_id": 1}
    assert out.after is not None and next(iter(out.after)) == "customer_id"
    assert out.before is not None and "id" not in out.before
    assert out.unchanged == ("customer_id",)
    assert out.schema.key == ("customer_id",)
    assert out.schema.column_names[0] == "customer_id"


def test_rename_column_schema_errors() -> None:
    clash = one("rename_column", table="public.customers", **{"from": "name", "to": "region"})
    with pytest.raises(TerminalError, match="already has a column region"):
        run(clash, change())
    typo = one("rename_column", table="public.customers", **{"from": "nmae", "to": "x"})
    with pytest.raises(TerminalError, match="no column nmae") as caught:
        run(typo, change())
    assert "id, name, region" in caught.value.remedy
    # a pattern selects the tables that have the column
    out = run(one("rename_column", table="public.*", **{"from": "nmae", "to": "x"}), change())
    assert out is not None and "name" in (out.after or {})


def test_columns_include_and_exclude() -> None:
    include = one("columns", table="public.customers", include=["id", "na*"])
    out = run(include, change(Op.UPDATE, EU, before=EU, unchanged=("region", "name")))
    assert out is not None
    assert out.after == {"id": 1, "name": "Ada"} and out.before == {"id": 1, "name": "Ada"}
    assert out.unchanged == ("name",)
    assert out.schema.column_names == ("id", "name")
    out = run(one("columns", table="public.customers", exclude="score"), change())
    assert out is not None and "score" not in (out.after or {})
    assert out.schema.column_names == ("id", "name", "region", "active")


def test_columns_cannot_leave_out_a_key_column_or_a_missing_one() -> None:
    with pytest.raises(TerminalError, match=r"key columns id .* cannot be left out") as caught:
        run(one("columns", table="public.customers", exclude=["id"]), change())
    assert "remove them from exclude" in caught.value.remedy
    with pytest.raises(TerminalError, match="cannot be left out") as caught:
        run(one("columns", table="public.customers", include=["name"]), change())
    assert "add them to include" in caught.value.remedy
    with pytest.raises(TerminalError, match="no column nmae"):
        run(one("columns", table="public.customers", exclude=["nmae"]), change())


# --- mask ----------------------------------------------------------------------------------


def test_mask_null_fixed_and_nulls_stay_null() -> None:
    out = run(one("mask", table="public.customers", column="name", **{"with": None}), change())
    assert out is not None and out.after is not None and out.after["name"] is None
    assert out.schema.column("name").nullable
    fixed = one("mask", table="public.customers", column="name", value="-", **{"with": "fixed"})
    out = run(fixed, change(Op.UPDATE, {**EU, "region": None}, before=EU))
    assert out is not None and out.after is not None and out.before is not None
    assert out.after["name"] == "-" and out.before["name"] == "-"
    out = run(fixed, change(Op.CREATE, {**EU, "name": None}))
    assert out is not None and out.after is not None and out.after["name"] is None


def test_mask_hash_is_keyed_hmac_and_may_mask_a_key() -> None:
    mask = one("mask", table="public.customers", column="id", key=KEY, **{"with": "hash"})
    out = run(mask, change())
    expected = hmac.new(KEY.encode(), b"1", hashlib.sha256).hexdigest()
    assert out is not None and out.key == {"id": expected}
    assert out.after is not None and out.after["id"] == expected
    assert out.schema.column("id") == Column("id", "text", False)
    assert redact(f"key={KEY}") == "key=***"


def test_mask_hash_key_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MASK_KEY", KEY)
    options = {"with": "hash", "key_env": "MASK_KEY"}
    out = run(one("mask", table="public.customers", column="name", **options), change())
    expected = hmac.new(KEY.encode(), b"Ada", hashlib.sha256).hexdigest()
    assert out is not None and out.after is not None and out.after["name"] == expected


@pytest.mark.parametrize(
    ("value", "options", "expected"),
    [
        ("4111111111111111", {"keep_last": 4}, "************1111"),
        ("alice@example.com", {"keep_first": 1, "keep_last": 4, "char": "#"}, "a############.com"),
        ("abc", {"keep_first": 2, "keep_last": 2}, "***"),  # too short: all hidden
        (12345, {"keep_first": 1}, "1****"),
    ],
)
def test_mask_partial(value: Any, options: dict[str, Any], expected: str) -> None:
    mask = one("mask", table="public.customers", column="name", **{"with": "partial"}, **options)
    out = run(mask, change(Op.CREATE, {**EU, "name": value}))
    assert out is not None and out.after is not None and out.after["name"] == expected


def test_mask_refuses_a_key_column_except_with_hash() -> None:
    mask = one("mask", table="public.customers", column="id", **{"with": "null"})
    with pytest.raises(TerminalError, match="key column") as caught:
        run(mask, change())
    assert "with: hash" in caught.value.remedy


# --- cast ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("to", "value", "expected"),
    [
        ("text", 12, "12"),
        ("text", True, "true"),
        ("text", {"a": [1]}, '{"a":[1]}'),
        ("integer", "42", 42),
        ("integer", " 42.00 ", 42),
        ("integer", 7.0, 7),
        ("bigint", "9223372036854775807", 9223372036854775807),
        ("numeric", "1e3", "1000"),
        ("numeric", 12, "12"),
        ("numeric", 0.1, "0.1"),
        ("double", "2.5", 2.5),
        ("double", "NaN", "NaN"),
        ("boolean", "yes", True),
        ("boolean", "F", False),
        ("boolean", 0, False),
        ("date", "2024-05-01T23:30:00.000000", "2024-05-01"),
        ("date", "2024-05-01T23:30:00.000000-02:00", "2024-05-02"),
        ("timestamp", "2024-05-01", "2024-05-01T00:00:00.000000"),
        ("timestamp", "2024-05-01T12:00:00+02:00", "2024-05-01T10:00:00.000000"),
        ("timestamptz", "2024-05-01T12:00:00", "2024-05-01T12:00:00.000000Z"),
        ("timestamptz", "2024-05-01T12:00:00.5+02:00", "2024-05-01T10:00:00.500000Z"),
    ],
)
def test_cast_converts_wire_values(to: str, value: Any, expected: Any) -> None:
    out = run(
        one("cast", table="public.customers", column="name", to=to),
        change(Op.CREATE, {**EU, "name": value}),
    )
    assert out is not None and out.after is not None
    assert out.after["name"] == expected


@pytest.mark.parametrize(
    ("to", "value"),
    [
        ("integer", "12abc"),
        ("integer", "1.5"),
        ("integer", 2**31),
        ("bigint", 2**63),
        ("numeric", "twelve"),
        ("double", True),
        ("boolean", "maybe"),
        ("date", 20240501),
        ("timestamp", "yesterday"),
        ("integer", [1, 2]),
    ],
)
def test_cast_failures_dead_letter_or_become_null(to: str, value: Any) -> None:
    item = change(Op.CREATE, {**EU, "name": value})
    with pytest.raises(TransformError, match=r"transforms\[0\]: cast name: cannot|out of range"):
        run(one("cast", table="public.customers", column="name", to=to), item)
    lenient = one("cast", table="public.customers", column="name", to=to, on_error=None)
    out = run(lenient, change(Op.CREATE, {**EU, "name": value}))
    assert out is not None and out.after is not None and out.after["name"] is None


def test_cast_changes_the_schema_in_the_source_engines_words() -> None:
    out = run(one("cast", table="public.customers", column="score", to="double"), change())
    assert out is not None and out.schema.column("score") == Column("score", "double precision")
    mysql = table(connector="mysql")
    cast = one("cast", table="public.customers", column="active", to="boolean")
    out = run(cast, change(Op.CREATE, {**EU, "active": "true"}, schema=mysql))
    assert out is not None and out.after is not None and out.after["active"] == 1
    assert out.schema.column("active") == Column("active", "tinyint")


def test_cast_converts_a_key_column_in_the_key_too() -> None:
    out = run(one("cast", table="public.customers", column="id", to="text"), change())
    assert out is not None and out.key == {"id": "1"}
    with pytest.raises(TerminalError, match="key column"):
        run(
            one("cast", table="public.customers", column="id", to="text", on_error="null"), change()
        )


# --- add_column ----------------------------------------------------------------------------


def added(item: Change, **options: Any) -> Any:
    out = run(one("add_column", table="public.customers", column="extra", **options), item)
    assert out is not None and out.after is not None
    return out.after.get("extra", "<absent>"), out


def test_add_column_literals_and_types() -> None:
    value, out = added(change(), value="shop-eu")
    assert value == "shop-eu" and out.schema.column("extra") == Column("extra", "text")
    assert added(change(), value=5)[1].schema.column("extra").type == "bigint"
    assert added(change(), value=5, column_type="numeric")[0] == "5"
    value, out = added(change(schema=table(connector="mysql")), value=True)
    assert value == 1 and out.schema.column("extra").type == "tinyint"


def test_add_column_computed() -> None:
    assert added(change(), **{"from": "source_ts"})[0] == "2024-05-01T12:00:00.123000Z"
    assert added(change(Op.READ), **{"from": "op"})[0] == "r"
    now = added(change(), **{"from": "now"})[0]
    stamp = datetime.fromisoformat(now)
    assert now.endswith("Z") and abs((datetime.now(UTC) - stamp).total_seconds()) < 60
    assert added(change(), **{"from": "source_ts", "column_type": "date"})[0] == "2024-05-01"


def test_add_column_template() -> None:
    item = change(Op.CREATE, {**EU, "region": None})
    assert added(item, template="{name} ({region}) #{id} {{x}}")[0] == "Ada () #1 {x}"
    # an unchanged column leaves the added one unchanged too
    after = {k: v for k, v in EU.items() if k != "name"}
    value, out = added(change(Op.UPDATE, after, unchanged=("name",)), template="{name}!")
    assert value == "<absent>" and out.unchanged == ("name", "extra")
    out = run(
        one("add_column", table="public.customers", column="extra", value=1),
        change(Op.DELETE, before={"id": 1}),
    )
    assert out is not None and out.after is None


def test_add_column_schema_errors() -> None:
    with pytest.raises(TerminalError, match="already has a column name"):
        run(one("add_column", table="public.customers", column="name", value=1), change())
    with pytest.raises(TerminalError, match="names nope"):
        run(one("add_column", table="public.*", column="x", template="{nope}"), change())


# --- python --------------------------------------------------------------------------------


class Upper:
    def __init__(self, column: str) -> None:
        self.column = column

    def schema(self, schema: TableSchema) -> TableSchema:
        return schema

    def apply(self, change: Change) -> Change | None:
        if change.after is not None:
            change.after[self.column] = str(change.after[self.column]).upper()
        return change


def make_upper(**options: Any) -> Upper:
    return Upper(**options)


def test_python_factory_gets_the_options() -> None:
    out = run(
        one("python", factory="tests.unit.test_transforms:make_upper", column="name"), change()
    )
    assert out is not None and out.after is not None and out.after["name"] == "ADA"


# --- the pipeline ----------------------------------------------------------------------------


def test_pipeline_runs_in_order_with_each_stages_schema() -> None:
    calls: list[TableSchema] = []

    class Spy:
        def schema(self, schema: TableSchema) -> TableSchema:
            calls.append(schema)
            return schema

        def apply(self, item: Change) -> Change | None:
            assert "full_name" in item.schema.column_names
            return item

    renamed = build(
        [
            TransformSettings(
                type="rename_column", table="public.*", to="full_name", **{"from": "name"}
            ),
            TransformSettings(
                type="mask", table="public.*", column="full_name", key=KEY, **{"with": "hash"}
            ),
        ]
    )
    pipeline = Pipeline([*renamed, Spy()])
    source = table()
    for _ in range(3):
        out = pipeline.apply(change(schema=source))
        assert out is not None and out.after is not None
        assert len(out.after["full_name"]) == 64
        assert out.schema.column("full_name").type == "text"
    assert len(calls) == 1  # schemas are derived once per table version
    assert pipeline.schema(source) is out.schema


def test_pipeline_stops_at_a_drop() -> None:
    class Boom:
        def schema(self, schema: TableSchema) -> TableSchema:
            return schema

        def apply(self, item: Change) -> Change | None:
            raise AssertionError("not reached")

    assert Pipeline([eu_filter(), Boom()]).apply(change(Op.CREATE, US)) is None
    assert not Pipeline([])
    with pytest.raises(SchemaError):
        one("columns", table="public.customers", exclude=["id"]).schema(table())


# --- configuration ---------------------------------------------------------------------------


def config(*transforms: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": "orders",
        "source": {
            "type": "postgres",
            "dsn": "postgresql://cdc@db/shop",
            "tables": ["public.customers", "public.orders"],
        },
        "kafka": {"bootstrap_servers": "kafka:9092"},
        "transforms": list(transforms),
    }


def issues(data: dict[str, Any]) -> list[ConfigIssue]:
    with pytest.raises(ConfigError) as caught:
        parse_settings(data, check_transforms=check)
    return caught.value.issues


MASK = {"type": "mask", "table": "public.customers", "column": "name", "with": "null"}


@pytest.mark.parametrize(
    ("bad", "path", "message", "hint"),
    [
        (
            {"type": "filtr", "table": "a.b"},
            "type",
            "unknown transform type",
            "did you mean filter?",
        ),
        ({**MASK, "colum": "x"}, "colum", "unknown option colum", "did you mean column?"),
        (
            {"type": "mask", "table": "public.customers", "with": "null"},
            "column",
            "required option column",
            "column: the column to mask",
        ),
        ({**MASK, "column": ""}, "column", "non-empty string", ""),
        ({**MASK, "table": "customers"}, "table", "must be schema.table", "public.orders"),
        ({**MASK, "table": "public.custmers"}, "table", "not among the tables", "source.tables"),
        ({**MASK, "with": "blur"}, "with", "must be one of: null, fixed, hash, partial", ""),
        ({**MASK, "with": "hash"}, "key", "needs key or key_env", ""),
        ({**MASK, "with": "hash", "key": "short"}, "key", "at least 16", "openssl"),
        (
            {**MASK, "with": "hash", "key_env": "CDC_TEST_UNSET_VAR"},
            "key_env",
            "is not set",
            "export",
        ),
        ({**MASK, "keep_last": 4}, "keep_last", "applies to with: partial", "remove it"),
        ({**MASK, "with": "partial", "keep_last": -1}, "keep_last", ">= 0", ""),
        (
            {"type": "filter", "table": "public.orders", "where": "a == 1"},
            "where",
            "unexpected '=='",
            "use =",
        ),
        (
            {"type": "cast", "table": "public.orders", "column": "a", "to": "int"},
            "to",
            "must be one of",
            "",
        ),
        ({"type": "columns", "table": "public.orders"}, "include", "include or exclude", ""),
        (
            {"type": "columns", "table": "public.orders", "include": [1]},
            "include",
            "list of names",
            "",
        ),
        ({"type": "route", "table": "public.orders", "to": "x"}, "to", "must be schema.table", ""),
        (
            {"type": "route", "table": "public.orders", "to": "a.{tbl}"},
            "to",
            "unknown placeholder",
            "",
        ),
        (
            {"type": "rename_table", "table": "public.orders", "to": "a.b.c"},
            "to",
            "name or schema.name",
            "",
        ),
        (
            {"type": "rename_column", "table": "public.orders", "from": "a", "to": "a"},
            "to",
            "same as from",
            "",
        ),
        (
            {"type": "add_column", "table": "public.orders", "column": "c"},
            "value",
            "exactly one",
            "",
        ),
        (
            {"type": "add_column", "table": "public.orders", "column": "c", "from": "today"},
            "from",
            "must be one of",
            "",
        ),
        (
            {
                "type": "add_column",
                "table": "public.orders",
                "column": "c",
                "value": "x",
                "column_type": "integer",
            },
            "value",
            "not a number",
            "",
        ),
        (
            {"type": "add_column", "table": "public.orders", "column": "c", "template": "{a"},
            "template",
            "lone {",
            "",
        ),
        ({"type": "python", "factory": "nope"}, "factory", "package.module:callable", ""),
        (
            {"type": "python", "factory": "no_such_module_xyz:make"},
            "factory",
            "cannot import",
            "PYTHONPATH",
        ),
        (
            {"type": "python", "factory": "tests.unit.test_transforms:nope"},
            "factory",
            "has no nope",
            "",
        ),
        (
            {"type": "python", "factory": "tests.unit.test_transforms:KEY"},
            "factory",
            "not callable",
            "",
        ),
        (
            {"type": "python", "factory": "tests.unit.test_transforms:make_upper"},
            "factory",
            "TypeError",
            "",
        ),
        (
            {"type": "python", "factory": "tests.unit.test_transforms:table"},
            "factory",
            "without apply and schema",
            "",
        ),
    ],
)
def test_config_errors_name_the_option(
    bad: dict[str, Any], path: str, message: str, hint: str
) -> None:
    found = issues(config(MASK, MASK, bad))
    assert len(found) == 1, found
    assert found[0].path == f"transforms[2].{path}"
    assert message in found[0].message
    assert hint in found[0].hint


def test_config_reports_every_transform_and_other_problems_at_once() -> None:
    data = config({**MASK, "column": 5}, MASK, {"type": "cast"})
    data["kafka"]["partitions"] = 0
    paths = [issue.path for issue in issues(data)]
    assert paths == ["kafka.partitions", "transforms[0].column", "transforms[2].table"]


def test_config_unset_variable_in_a_transform_is_reported_once() -> None:
    found = issues(config({**MASK, "with": "hash", "key": "${CDC_TEST_UNSET_VAR}"}))
    assert [issue.path for issue in found] == ["transforms[0].key"]
    assert "CDC_TEST_UNSET_VAR is not set" in found[0].message


def test_config_masks_the_hash_key() -> None:
    settings = parse_settings(config({**MASK, "with": "hash", "key": KEY}), check_transforms=check)
    assert "***" in yaml.safe_dump(settings.masked())
    assert KEY not in redact(yaml.safe_dump(settings.masked()))


def test_build_without_config_loading_raises_with_indexes() -> None:
    with pytest.raises(TransformConfigError) as caught:
        build([TransformSettings(type="mask", table="public.a"), TransformSettings(type="nope")])
    assert [issue.path for issue in caught.value.issues] == [
        "transforms[0].column",
        "transforms[1].type",
    ]


def test_cdc_config_check_shows_the_yaml_path_and_hint(tmp_path: Path) -> None:
    path = tmp_path / "pipeline.yaml"
    bad = {"type": "cast", "table": "public.orders", "to": "text"}
    path.write_text(yaml.safe_dump(config(MASK, MASK, bad)))
    result = CliRunner().invoke(main, ["config", "check", "-c", str(path)])
    assert result.exit_code == 2
    assert (
        "transforms[2].column: required option column is missing"
        " (hint: column: the column to convert)" in result.output
    )
