"""The statements a keyless table's changes become on each target: one row found by every
column, NULL by IS NULL, text byte for byte on MySQL, types without an equality by their
text on PostgreSQL (`sinks.postgres.keyless`, `sinks.mysql.keyless`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, cast

from psycopg import sql
from pymysql.converters import escape_item

from cdc.mysql.target_values import Convert, TargetColumn
from sinks.mysql import keyless as my
from sinks.postgres import keyless as pg
from sinks.postgres.tables import TargetTable


def pg_table(**types: str) -> TargetTable:
    nothing = cast(Any, None)  # the COPY encoders: no statement here uses them
    return TargetTable("public", "log", types, (), "stage", {}, nothing, nothing)


def text(statement: sql.Composable) -> str:
    return statement.as_string(None)


def test_postgres_delete_finds_one_row_by_every_column() -> None:
    table = pg_table(a="integer", b="text", j="json")
    statement, params = pg.delete_sql(table, {"a": "1", "b": None, "j": '{"k": 1}'})
    assert text(statement) == (
        'DELETE FROM "public"."log" WHERE (tableoid, ctid) = (SELECT tableoid, ctid FROM'
        ' "public"."log" WHERE "a" = %s::integer AND "b" IS NULL'
        ' AND "j"::jsonb = (%s::json)::jsonb LIMIT 1)'
    )
    assert params == ["1", '{"k": 1}']


def test_postgres_update_sets_the_new_values_of_one_row() -> None:
    table = pg_table(a="integer", b="character varying(20)")
    statement, params = pg.update_sql(table, {"a": "2", "b": None}, {"b": "was null"})
    assert text(statement) == (
        'UPDATE "public"."log" SET "b" = %s::character varying(20) WHERE (tableoid, ctid) ='
        ' (SELECT tableoid, ctid FROM "public"."log" WHERE "a" = %s::integer AND "b" IS NULL'
        " LIMIT 1)"
    )
    assert params == ["was null", "2"]


def test_postgres_json_compares_as_jsonb_types_without_an_equality_as_text() -> None:
    assert pg.compared_as("json") == "jsonb"  # json keeps its input's spacing
    assert pg.compared_as("json[]") == "jsonb[]"
    for kind in ("xml", "point", "box", "polygon", "point[]"):
        assert pg.compared_as(kind) == "text", kind
    for kind in ("jsonb", "integer", "numeric(10,2)", "text[]", "timestamp with time zone"):
        assert pg.compared_as(kind) == kind, kind


@dataclass
class MyTable:
    columns: dict[str, TargetColumn]
    converters: dict[tuple[str, str], Convert] = field(default_factory=dict)
    ident: str = "`db`.`log`"
    qualified: str = "db.log"


def escape(value: Any) -> str:
    return str(escape_item(value, "utf8mb4"))


def column(name: str, data_type: str, column_type: str = "", json: bool = False) -> TargetColumn:
    return TargetColumn(name, data_type, column_type or data_type, json=json)


def test_mysql_matches_each_type_exactly() -> None:
    assert my.condition(column("a", "int"), None, escape) == "`a` IS NULL"
    assert my.condition(column("a", "int"), 5, escape) == "`a` = 5"
    # by the collation (an index serves it), then byte for byte: 'e' is not 'É'
    assert my.condition(column("b", "varchar"), "e", escape) == (
        "`b` = 'e' AND `b` = CAST('e' AS BINARY)"
    )
    # CHAR comes back without its padding
    assert my.condition(column("c", "char", "char(5)"), "ab   ", escape) == (
        "`c` = 'ab' AND `c` = CAST('ab' AS BINARY)"
    )
    assert my.condition(column("f", "float"), 0.1, escape) == "`f` = CAST(0.1e0 AS FLOAT)"
    assert my.condition(column("j", "json", json=True), '{"k": 1}', escape) == (
        "`j` = CAST('{\\\"k\\\": 1}' AS JSON)"
    )
    # MariaDB's JSON is text
    assert my.condition(column("j", "longtext", json=True), "[1]", escape) == (
        "`j` = '[1]' AND `j` = CAST('[1]' AS BINARY)"
    )
    assert my.condition(column("y", "binary", "binary(4)"), b"ab", escape) == (
        "`y` = _binary X'61620000'"
    )


def test_mysql_statements_change_one_row() -> None:
    table = MyTable({"a": column("a", "int"), "b": column("b", "text")})
    old = {"a": 2, "b": None}
    assert my.delete_sql(table, old, escape) == (
        "DELETE FROM `db`.`log` WHERE `a` = 2 AND `b` IS NULL LIMIT 1"
    )
    assert my.update_sql(table, old, {"b": "x"}, escape) == (
        "UPDATE `db`.`log` SET `b` = 'x' WHERE `a` = 2 AND `b` IS NULL LIMIT 1"
    )
    assert my.insert_sql(table, ["a", "b"], ["(1, 'x')", "(1, 'x')"]) == (
        "INSERT INTO `db`.`log` (`a`, `b`) VALUES (1, 'x'), (1, 'x')"
    )


class Cursor:
    """Records statements; an UPDATE or DELETE reports `affected` rows."""

    def __init__(self, affected: int, found: bool) -> None:
        self.affected, self.found = affected, found
        self.statements: list[str] = []

    def execute(self, statement: str) -> int:
        self.statements.append(statement)
        return self.affected

    def fetchone(self) -> tuple[int] | None:
        return (1,) if self.found else None


def test_a_mysql_update_that_changed_nothing_asks_whether_the_row_is_there() -> None:
    table = MyTable({"a": column("a", "int")})
    for found in (True, False):
        cur = Cursor(0, found)
        assert my.MysqlKeyless(cur, table, escape, 10_000).update({"a": 1}, {"a": 1}) is found
        assert cur.statements[-1] == "SELECT 1 FROM `db`.`log` WHERE `a` = 1 LIMIT 1"


def test_mysql_inserts_are_cut_to_the_statement_budget() -> None:
    table = MyTable({"a": column("a", "int"), "b": column("b", "text")})
    cur = Cursor(1, True)
    rows = [{"a": n, "b": "x" * 10} for n in range(6)] + [{"a": 7}]
    my.MysqlKeyless(cur, table, escape, 60).insert(rows)
    values = [s.split(" VALUES ")[1] for s in cur.statements]
    assert values == [
        "(0, 'xxxxxxxxxx'), (1, 'xxxxxxxxxx'), (2, 'xxxxxxxxxx')",
        "(3, 'xxxxxxxxxx'), (4, 'xxxxxxxxxx'), (5, 'xxxxxxxxxx')",
        "(7)",
    ]
