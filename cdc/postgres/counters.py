"""Sequences of a PostgreSQL database, for the cut-over: the next value a
source's sequence gives, and a target's sequences moved above it."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import psycopg
from psycopg import sql

from cdc.engine.cutover import CounterSync, TableName

# Sequences owned by a column: serial ('a') and identity ('i') columns.
_OWNED = """
SELECT n.nspname, c.relname, a.attname, s.oid::regclass::text
FROM pg_depend d
JOIN pg_class s ON s.oid = d.objid AND s.relkind = 'S'
JOIN pg_class c ON c.oid = d.refobjid
JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = d.refobjsubid
WHERE d.classid = 'pg_class'::regclass AND d.refclassid = 'pg_class'::regclass
  AND d.deptype IN ('a', 'i')
"""


def next_value(conn: psycopg.Connection[Any], schema: str, table: str, column: str) -> int:
    row = conn.execute(
        "SELECT pg_get_serial_sequence(%s, %s)",
        (sql.Identifier(schema, table).as_string(conn), column),
    ).fetchone()
    if row is None or row[0] is None:
        return 1
    state = conn.execute(
        sql.SQL("SELECT last_value, is_called FROM {}").format(sql.SQL(row[0]))
    ).fetchone()
    assert state is not None
    return int(state[0]) + 1 if state[1] else int(state[0])


def raise_counters(
    conn: psycopg.Connection[Any],
    tables: Mapping[TableName, TableName],
    source_next: Callable[[TableName, str], int],
) -> list[CounterSync]:
    done = []
    for schema, table, column, sequence in conn.execute(_OWNED).fetchall():
        source = tables.get((schema, table))
        if source is None:
            continue
        row = conn.execute(
            sql.SQL("SELECT coalesce(max({}), 0) FROM {}").format(
                sql.Identifier(column), sql.Identifier(schema, table)
            )
        ).fetchone()
        assert row is not None
        value = max(int(row[0]) + 1, source_next(source, column))
        conn.execute("SELECT setval(%s::regclass, %s, false)", (sequence, value))
        done.append(CounterSync(f"{schema}.{table}", column, value))
    return done
