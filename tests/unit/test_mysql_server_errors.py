"""What the sink makes of a MariaDB/MySQL error: retry, apply change by change, or stop."""

from __future__ import annotations

import pymysql

from cdc.errors import TerminalError, TransientError
from sinks.mysql.server_errors import classify


def test_a_connection_pymysql_closed_after_the_server_left_is_retried() -> None:
    # what `begin()` raises on the connection of a batch that failed when MariaDB was killed
    assert isinstance(classify(pymysql.err.InterfaceError(0, "")), TransientError)


def test_a_refused_value_is_applied_change_by_change() -> None:
    found = classify(pymysql.err.OperationalError(1366, "Incorrect integer value"))
    assert isinstance(found, pymysql.err.DataError)


def test_a_target_column_without_default_stops_with_the_fix() -> None:
    found = classify(pymysql.err.OperationalError(1364, "Field 'x' doesn't have a default value"))
    assert isinstance(found, TerminalError)
    assert "default" in str(found)


def test_a_lost_connection_stays_what_it_was() -> None:
    lost = pymysql.err.OperationalError(2013, "Lost connection to server during query")
    assert classify(lost) is lost
