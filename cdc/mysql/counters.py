"""AUTO_INCREMENT counters of a MySQL/MariaDB database, for the cut-over: the
next value a source's counter gives, and a target's counters moved above it.
`cur`: a DictCursor."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from cdc.engine.cutover import CounterSync, TableName
from cdc.mysql.dialect import qualified, quote


def next_value(cur: Any, database: str, table: str) -> int:
    cur.execute(
        "SELECT AUTO_INCREMENT AS n FROM information_schema.TABLES"
        " WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s",
        (database, table),
    )
    found = cur.fetchone()
    return int(found["n"]) if found and found["n"] is not None else 1


def raise_counters(
    cur: Any,
    tables: Mapping[TableName, TableName],
    source_next: Callable[[TableName, str], int],
) -> list[CounterSync]:
    done = []
    for (database, table), source in tables.items():
        column = _auto_increment_column(cur, database, table)
        if column is None:
            continue
        ident = qualified(database, table)
        cur.execute(f"SELECT coalesce(max({quote(column)}), 0) AS m FROM {ident}")
        found: Any = cur.fetchone()
        value = max(int(found["m"]) + 1, source_next(source, column))
        cur.execute(f"ALTER TABLE {ident} AUTO_INCREMENT = {int(value)}")
        done.append(CounterSync(f"{database}.{table}", column, value))
    return done


def _auto_increment_column(cur: Any, database: str, table: str) -> str | None:
    cur.execute(
        "SELECT COLUMN_NAME AS c FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = %s"
        " AND TABLE_NAME = %s AND EXTRA LIKE '%%auto_increment%%'",
        (database, table),
    )
    found = cur.fetchone()
    return str(found["c"]) if found else None
