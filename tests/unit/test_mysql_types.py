"""The MySQL target's type mapping, wire conversions and statement cutting."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal

import pytest

from cdc.mysql.target_types import mysql_type
from cdc.mysql.target_values import TargetColumn, converter, key_normalizer, parse_duration
from cdc.schemas import Column
from sinks.mysql import statements

COLLATION = "utf8mb4_nopad_bin"


@pytest.mark.parametrize(
    ("source", "key", "expected"),
    [
        ("numeric(12,2)", False, "DECIMAL(12,2)"),
        ("numeric", False, "DECIMAL(65,30)"),
        ("numeric(80,40)", False, "DECIMAL(65,30)"),
        ("numeric(3,5)", False, "DECIMAL(5,5)"),
        ("timestamp(3) with time zone", False, "DATETIME(3)"),
        ("timestamp without time zone", False, "DATETIME(6)"),
        ("time without time zone", False, "TIME(6)"),
        ("time with time zone", False, "VARCHAR(32)"),
        ("interval", False, "VARCHAR(64)"),
        ("text[]", False, "JSON"),
        ("character varying(40)", False, "VARCHAR(40)"),
        ("character varying(4000)", False, "LONGTEXT"),
        ("boolean", False, "TINYINT(1)"),
        ("my_enum", False, "LONGTEXT"),
        ("text", True, f"VARCHAR(255) CHARACTER SET utf8mb4 COLLATE {COLLATION}"),
        ("character varying(500)", True, f"VARCHAR(500) CHARACTER SET utf8mb4 COLLATE {COLLATION}"),
        ("bytea", True, "VARBINARY(255)"),
        ("uuid", True, "CHAR(36) CHARACTER SET ascii COLLATE ascii_bin"),
    ],
)
def test_postgres_types(source: str, key: bool, expected: str) -> None:
    assert mysql_type(Column("c", source), "postgresql", key, COLLATION) == expected


def test_mysql_types_keep_theirs() -> None:
    def ddl(name: str, **extra: object) -> str:
        return mysql_type(Column("c", name, extra=dict(extra)), "mysql", False, COLLATION)

    assert ddl("bigint unsigned") == "BIGINT UNSIGNED"
    assert ddl("decimal(65,30)") == "DECIMAL(65,30)"
    assert ddl("timestamp(3)") == "DATETIME(3)"
    assert ddl("varchar") == "LONGTEXT"
    assert ddl("enum", labels=["a", "it's"]) == "ENUM('a','it''s')"
    assert ddl("set", labels=["a", "b"]) == "SET('a','b')"


def convert(data_type: str, value: object, source: str = "text", json: bool = False) -> object:
    target = TargetColumn("c", data_type, data_type, json=json)
    return converter(target, Column("c", source))(value)


def test_wire_values_become_what_the_column_takes() -> None:
    assert convert("datetime", "2024-05-01T10:00:00.000001Z") == datetime(2024, 5, 1, 10, 0, 0, 1)
    assert convert("datetime", "2024-05-01T12:00:00+02:00") == datetime(2024, 5, 1, 10)
    assert convert("decimal", "1.50") == Decimal("1.50")
    assert convert("tinyint", True) == 1
    assert convert("longblob", "AAE=", "bytea") == b"\x00\x01"
    assert convert("longblob", "héllo", "text") == "héllo".encode()
    assert convert("longtext", {"b": 1}, "jsonb", json=True) == '{"b":1}'
    assert convert("longtext", '{"b": 1}', "text", json=True) == '{"b": 1}'
    assert convert("set", ["a", "c"], "set") == "a,c"
    assert convert("time", "-P1DT2H0.500000S", "time(6)") == -timedelta(
        days=1, hours=2, seconds=0.5
    )


@pytest.mark.parametrize(
    ("data_type", "value"),
    [("double", "NaN"), ("float", "-Infinity"), ("decimal", "NaN"), ("int", "1.5")],
)
def test_values_mysql_cannot_hold_are_errors(data_type: str, value: object) -> None:
    with pytest.raises((ValueError, ArithmeticError)):
        convert(data_type, value, "double precision")


def test_durations_in_both_wire_forms() -> None:
    assert parse_duration("P1DT2H3M4.000005S") == timedelta(1, 7384, 5)
    assert parse_duration("PT20H20M20.07322S") == timedelta(hours=20, minutes=20, seconds=20.07322)
    assert parse_duration("P-1DT2H") == timedelta(days=-1, hours=2)
    with pytest.raises(ValueError, match="months"):
        parse_duration("P1Y2M")


def test_keys_compare_as_the_server_returns_them() -> None:
    assert key_normalizer(TargetColumn("c", "char", "char(5)"))("ab   ") == "ab"
    assert key_normalizer(TargetColumn("c", "binary", "binary(4)"))(b"\x01") == b"\x01\0\0\0"


def test_statements_are_cut_by_rows_and_size() -> None:
    assert list(statements.chunked("abcde", [1] * 5, 100, 2)) == [["a", "b"], ["c", "d"], ["e"]]
    assert list(statements.chunked("abc", [40, 40, 40], 100, 10)) == [["a", "b"], ["c"]]
    assert list(statements.chunked("ab", [500, 1], 100, 10)) == [["a"], ["b"]]
    rows = ["(1, 'x')", "(2, 'y')"]
    (sql,) = statements.upserts("`d`.`t`", ["id", "v"], rows, ["v"], 1000, alias=False)
    assert sql == (
        "INSERT INTO `d`.`t` (`id`, `v`) VALUES (1, 'x'), (2, 'y')"
        " ON DUPLICATE KEY UPDATE `v` = VALUES(`v`)"
    )
    (sql,) = statements.partial_updates("`t`", ["id"], ["id", "v"], [{"id": "1", "v": "'x'"}], 99)
    assert (
        sql
        == "UPDATE `t` SET `v` = CASE WHEN (`id`) = (1) THEN 'x' ELSE `v` END WHERE (`id`) IN ((1))"
    )
