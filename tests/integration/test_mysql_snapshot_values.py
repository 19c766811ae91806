"""The Kafka snapshot of a MariaDB table reads dates, times and decimals as
MariaDB's text (`TEXT_VALUES`, `wire_converter`) and writes the same message
bytes as reading them as Python objects (`converter`) would, zero dates
included."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import pymysql
import pymysql.cursors
import pytest

from cdc.errors import TerminalError
from cdc.mysql.catalog import MyTable, load_table
from cdc.mysql.position import BinlogPosition
from cdc.mysql.schema import table_schema
from cdc.mysql.snapshot import TEXT_VALUES, converter, read_table, wire_converter
from cdc.mysql.zero_dates import ZeroDates
from cdc.snapshot_rows import read_messages

DDL = """
CREATE TABLE t (
    id INT PRIMARY KEY,
    d DATE, dt0 DATETIME, dt3 DATETIME(3), dt6 DATETIME(6), ts6 TIMESTAMP(6) NULL,
    amount DECIMAL(12,2), big DECIMAL(30,0), small DECIMAL(5,5), name VARCHAR(20)
)
"""
ROWS = [
    "(1, '2024-01-03', '2024-01-03 04:05:48', '2024-01-03 04:05:48.875',"
    " '2024-01-03 04:05:48.875224', '2024-01-03 04:05:48.000001', 46261.84,"
    " 123456789012345678901234567890, 0.00001, 'a')",
    "(2, '0999-12-31', '1000-01-01 00:00:00', '9999-12-31 23:59:59.999',"
    " '0001-01-01 00:00:00.000000', '2038-01-19 03:14:07.999999', -0.50, -1, -0.99999, NULL)",
    "(3, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, 'nulls')",
    "(4, '0000-00-00', '0000-00-00 00:00:00', '2024-00-10 00:00:00', '2024-02-00 10:00:00',"
    " '0000-00-00 00:00:00', 0, 0, 0, 'zero dates')",
]


def _connect(dsn: str, conv: dict[Any, Any] | None = None) -> pymysql.Connection[Any]:
    parts = urlsplit(dsn)
    return pymysql.connect(
        conv=conv,
        host=parts.hostname,
        port=parts.port or 3306,
        user=parts.username,
        password=parts.password or "",
        database=parts.path.lstrip("/"),
        autocommit=True,
        charset="utf8mb4",
        cursorclass=pymysql.cursors.DictCursor,
        init_command="SET time_zone = '+00:00'",
    )


def _messages(dsn: str, table: MyTable, text: bool, zero_dates: ZeroDates) -> list[Any]:
    make = wire_converter if text else converter
    converters = [make(c, zero_dates, table.qualified) for c in table.columns]
    schema = table_schema(
        table.schema, table.name, table.columns, table.primary_key, table.defaults
    )
    source = {"connector": "mysql", "db": table.schema, "file": "b.000001", "pos": 4}
    rows = [
        row
        for rows, _, _ in read_table(
            lambda: _connect(dsn, TEXT_VALUES if text else None), table, None, 1000
        )
        for row in rows
    ]
    position = BinlogPosition("b.000001", 4, "")
    return read_messages(schema, converters, rows, 1, position, source, "pos", 2).messages


@pytest.fixture
def table(mysql_dsn: str) -> MyTable:
    with _connect(mysql_dsn) as conn, conn.cursor() as cursor:
        cursor.execute("SET SESSION sql_mode = ''")  # zero dates in, as old data has them
        cursor.execute(DDL)
        cursor.execute("INSERT INTO t VALUES " + ", ".join(ROWS))
        return load_table(cursor, urlsplit(mysql_dsn).path.lstrip("/"), "t")


def test_text_values_give_the_messages_python_values_give(mysql_dsn: str, table: MyTable) -> None:
    as_text = _messages(mysql_dsn, table, text=True, zero_dates="null")
    assert len(as_text) == len(ROWS)
    assert as_text == _messages(mysql_dsn, table, text=False, zero_dates="null")
    assert b'"dt6":"2024-01-03T04:05:48.875224"' in as_text[0][2]
    assert b'"ts6":"2024-01-03T04:05:48.000001Z"' in as_text[0][2]
    assert b'"big":"123456789012345678901234567890"' in as_text[0][2]
    # zero dates, whole or in part, are null under the `null` policy, on both paths
    assert b'"d":null,"dt0":null,"dt3":null,"dt6":null,"ts6":null' in as_text[3][2]


def test_a_zero_date_under_the_error_policy_stops_the_snapshot(
    mysql_dsn: str, table: MyTable
) -> None:
    with pytest.raises(TerminalError, match="zero date"):
        _messages(mysql_dsn, table, text=True, zero_dates="error")
