"""Sequences and AUTO_INCREMENT counters of the target, moved above the source's.

Replication copies rows, not counters: after the cut-over the target's
sequences would hand out ids the source already used. Each counter of a
replicated table is set to the larger of the source's next value and the
target's max(column) + 1. Target tables are named as the sink names them
(PostgreSQL: the source's schema.table; MySQL: the DSN's database and the
table name), through `rename_table` and `route`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from psycopg import sql

from cdc.migrate.connections import is_postgres, mysql_connect, pg_connect
from cdc.migrate.verify.plan import target_table
from cdc.mysql import catalog as mysql_catalog
from cdc.postgres import catalog as pg_catalog
from cdc.settings import Settings
from sinks.mysql.statements import quote
from transforms.registry import build

# Sequences owned by a column: serial ('a') and identity ('i') columns.
_PG_OWNED = """
SELECT n.nspname, c.relname, a.attname, s.oid::regclass::text
FROM pg_depend d
JOIN pg_class s ON s.oid = d.objid AND s.relkind = 'S'
JOIN pg_class c ON c.oid = d.refobjid
JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = d.refobjsubid
WHERE d.classid = 'pg_class'::regclass AND d.refclassid = 'pg_class'::regclass
  AND d.deptype IN ('a', 'i')
"""


@dataclass(frozen=True)
class CounterSync:
    table: str  # the target table
    column: str
    value: int  # the next value the target hands out


def source_tables(settings: Settings) -> list[tuple[str, str]]:
    """(schema, table) of every replicated source table."""
    if is_postgres(settings.source):
        with pg_connect(settings.source.dsn) as conn:
            return [
                (t.schema, t.name) for t in pg_catalog.select_tables(conn, settings.source.selects)
            ]
    with mysql_connect(settings.source.dsn) as conn, conn.cursor() as cur:
        return [
            (t.schema, t.name) for t in mysql_catalog.select_tables(cur, settings.source.selects)
        ]


def sync_counters(settings: Settings) -> list[CounterSync]:
    """Move every counter of the target's replicated tables above the source's."""
    assert settings.target is not None
    transforms = build(settings.transforms)
    targets = {
        target_table(settings, transforms, source): source for source in source_tables(settings)
    }
    if is_postgres(settings.target):
        return _sync_pg_target(settings, targets)
    return _sync_mysql_target(settings, targets)


def _source_next(settings: Settings, schema: str, table: str, column: str) -> int:
    """The next value the source's counter of schema.table.column would give (1: none)."""
    if is_postgres(settings.source):
        with pg_connect(settings.source.dsn) as conn:
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
    with mysql_connect(settings.source.dsn) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT AUTO_INCREMENT AS n FROM information_schema.TABLES"
            " WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s",
            (schema, table),
        )
        found = cur.fetchone()
        return int(found["n"]) if found and found["n"] is not None else 1


Targets = dict[tuple[str, str], tuple[str, str]]  # target (schema, table) -> source's


def _sync_pg_target(settings: Settings, targets: Targets) -> list[CounterSync]:
    assert settings.target is not None
    done = []
    with pg_connect(settings.target.dsn) as conn:
        for schema, table, column, sequence in conn.execute(_PG_OWNED).fetchall():
            source = targets.get((schema, table))
            if source is None:
                continue
            row = conn.execute(
                sql.SQL("SELECT coalesce(max({}), 0) FROM {}").format(
                    sql.Identifier(column), sql.Identifier(schema, table)
                )
            ).fetchone()
            assert row is not None
            value = max(int(row[0]) + 1, _source_next(settings, *source, column))
            conn.execute("SELECT setval(%s::regclass, %s, false)", (sequence, value))
            done.append(CounterSync(f"{schema}.{table}", column, value))
    return done


def _sync_mysql_target(settings: Settings, targets: Targets) -> list[CounterSync]:
    assert settings.target is not None
    done = []
    with mysql_connect(settings.target.dsn) as conn, conn.cursor() as cur:
        for (database, table), source in targets.items():
            column = _auto_increment_column(cur, database, table)
            if column is None:
                continue
            ident = f"{quote(database)}.{quote(table)}"
            cur.execute(f"SELECT coalesce(max({quote(column)}), 0) AS m FROM {ident}")
            found: Any = cur.fetchone()
            value = max(int(found["m"]) + 1, _source_next(settings, *source, column))
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
