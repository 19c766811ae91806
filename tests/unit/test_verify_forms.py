"""What `cdc verify` counts as one value across engines and spellings: the form each
column pair compares in, and the Python side of each form."""

from __future__ import annotations

import ipaddress
import uuid
from datetime import time, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest

from cdc.engine.verify import ColumnInfo, compared_as, paired
from cdc.migrate.verify.canonical import canonical, row_hash
from cdc.migrate.verify.forms import in_form


def alike(form: str, *values: Any) -> bool:
    """Whether every value hashes alike in `form`."""
    return len({row_hash([in_form(form, v)]) for v in values}) == 1


def test_a_single_precision_float_is_its_shortest_decimal_whatever_digits_were_printed() -> None:
    # PostgreSQL with extra_float_digits=3, MariaDB's exact double, the shortest form
    assert alike("float4", 1.10000002, 1.100000023841858, 1.1, Decimal("1.1"))
    assert in_form("float4", 1.2345677614212036) == Decimal("1.2345678")
    assert not alike("float4", 1.2345678, 1.2345679)  # MariaDB prints both as 1.23457
    assert alike("float4", 0.0, -0.0) and alike("float8", 0.0, -0.0)
    assert in_form("float4", 1e39) == 1e39  # no single holds it: kept, so it differs


@pytest.mark.parametrize(
    "spellings",
    [
        ("1 day", "24:00:00", "PT24H", "P1D", timedelta(days=1), Decimal(86_400_000_000)),
        ("1 mon", "30 days", "P1M", "P30D", "PT720H"),  # PostgreSQL: a month is 30 days
        ("1 year -2 mons", "P10M", "P1Y-2M", "300 days"),
        ("-1 days +02:00:00", "-PT22H", "-22:00:00", timedelta(hours=-22)),
        ("100:00:01.5", "PT100H0M1.5S", "P4DT4H1.5S", timedelta(hours=100, seconds=1.5)),
        (time(12, 30), "12:30:00", "PT12H30M"),  # a time of day, a MySQL TIME
    ],
)
def test_a_duration_is_its_length_in_any_spelling(spellings: tuple[Any, ...]) -> None:
    assert alike("duration", *spellings)


def test_durations_that_differ_or_do_not_parse_stay_apart() -> None:
    assert not alike("duration", "PT24H", "PT24H0.000001S")
    assert not alike("duration", "P1M", "P31D")
    assert in_form("duration", "soon") == "soon"
    assert in_form("duration", "P") == "P" and in_form("duration", "PT") == "PT"


def test_a_time_with_zone_is_its_time_and_offset() -> None:
    zoned = time(12, 0, 0, 500_000, tzinfo=timezone(timedelta(hours=2)))
    assert alike("timetz", "12:00:00.5+02", "12:00:00.500000+02:00", "12:00:00.5+0200", zoned)
    assert not alike("timetz", "12:00:00+02", "10:00:00+00")  # one instant, other zones
    assert alike("timetz", "05:30:00-05:30", "05:30:00-0530")


def test_json_is_the_document_whatever_its_key_order_and_spacing() -> None:
    assert alike(
        "json", '{"a": 1, "b": [1.0, null]}', '{"b":[1,null],"a":1}', {"a": 1, "b": [1, None]}
    )
    assert not alike("json", '{"n": 1}', '{"n": "1"}')
    assert not alike("json", '{"x": true}', '{"x": 1}')
    assert not alike("json", "[1, 2]", "[2, 1]")
    digits = "0.1234567890123456789012345678901"  # past a double and the default context
    assert not alike("json", f"[{digits}]", f"[{digits}2]")
    assert in_form("json", "{not json") == "{not json"


def test_a_set_is_its_members() -> None:
    assert alike("set", "x,z", ["z", "x"], ["x", "z", "x"], ("z", "x"))
    assert alike("set", "", [])
    assert not alike("set", "x", ["x", "y"])


def test_uuids_chars_and_bits() -> None:
    value = uuid.UUID("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11")
    assert alike("uuid", value, str(value), str(value).upper(), value.hex)
    assert alike("char", "ab", "ab   ") and not alike("char", "ab", " ab")
    assert not alike("text", "ab", "ab ")  # text keeps trailing spaces
    assert alike("bit", 5, b"\x05", b"\x00\x05")


def test_an_address_is_its_address_and_prefix() -> None:
    mapped = ipaddress.ip_address("::ffff:1.2.3.4")
    assert alike("inet", "::ffff:1.2.3.4", "::ffff:102:304", mapped, "0:0:0:0:0:ffff:102:304")
    assert alike("inet", "1.2.3.4", "1.2.3.4/32", ipaddress.ip_address("1.2.3.4"))
    assert not alike("inet", "1.2.3.4/24", "1.2.3.4")
    assert alike("inet", "10.0.0.0/8", ipaddress.ip_network("10.0.0.0/8"))


def test_decimals_keep_every_digit() -> None:
    long = "6671871686587283144.700000000000000000000000000001"
    assert canonical(Decimal(long)) == long
    assert canonical(Decimal("1.500")) == canonical(Decimal("1.5")) == "1.5"


def pg(family: str, name: str = "") -> ColumnInfo:
    return ColumnInfo("c", name or family, family)


@pytest.mark.parametrize(
    ("ours", "theirs", "same_engine", "form", "in_sql"),
    [
        (pg("int", "int4"), pg("bool", "bool"), False, "number", True),
        (pg("decimal", "numeric"), pg("int", "bigint"), False, "number", True),
        (pg("float4", "float4"), pg("float4", "float"), False, "float4", False),
        (pg("float4", "float4"), pg("float4", "float4"), True, "float4", True),
        (pg("float4", "float4"), pg("float8", "float8"), True, "float4", False),
        (pg("char", "bpchar"), pg("text", "longtext"), False, "char", True),
        (pg("uuid"), pg("char", "char"), False, "uuid", True),
        (pg("enum", "mood"), pg("text", "longtext"), False, "text", True),
        (pg("timestamptz"), pg("timestamp", "datetime"), False, "timestamp", True),
        (pg("interval"), pg("text", "varchar"), False, "duration", False),
        (pg("time", "time"), pg("interval"), False, "duration", False),
        (pg("interval"), pg("interval"), True, "duration", True),
        (pg("timetz"), pg("text", "varchar"), False, "timetz", False),
        (pg("jsonb"), pg("json", "longtext"), False, "json", False),
        (pg("jsonb"), pg("jsonb"), True, "json", True),
        (pg("json"), pg("json"), True, "json", False),
        (pg("array", "_int4"), pg("json", "longtext"), False, "json", False),
        (pg("array", "_int4"), pg("array", "_int4"), True, "native", True),
        (pg("set", "set"), pg("array", "_text"), False, "set", False),
        (pg("set", "set"), pg("set", "set"), True, "set", False),
        (pg("bit", "bit"), pg("bytes", "bytea"), False, "bit", False),
        (pg("inet"), pg("text", "varchar"), False, "inet", False),
        (pg("inet"), pg("inet"), True, "native", True),
        (pg("other", "money"), pg("text", "longtext"), False, "other", False),
    ],
)
def test_each_pair_has_its_form(
    ours: ColumnInfo, theirs: ColumnInfo, same_engine: bool, form: str, in_sql: bool
) -> None:
    assert compared_as(ours, theirs, same_engine) == form
    source, target, sql = paired(
        [(pg("int", "int4"), pg("int", "int")), (ours, theirs)], same_engine
    )
    assert (source[1].form, target[1].form, sql) == (form, form, in_sql)
