"""A source's DROP TABLE and RENAME TABLE on a PostgreSQL target
(`sinks.table_barriers`), in the transaction that marks the event done.
cdc's own records of the table go with it: its schema-change history
(`cdc_schema_changes`, which later batches read) and its last-writer-wins
versions (`cdc_row_versions`)."""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg import sql

from cdc.changes import TableEvent
from cdc.errors import TerminalError

_RECORDS = ("public.cdc_schema_changes", "public.cdc_row_versions")


def _exists(conn: psycopg.Connection[Any], target: tuple[str, str]) -> bool:
    row = conn.execute(
        "SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE n.nspname = %s AND c.relname = %s AND c.relkind IN ('r', 'p')",
        target,
    ).fetchone()
    return row is not None


def drop(conn: psycopg.Connection[Any], event: TableEvent) -> str:
    """Drop the target table, forgetting its records (a table created again
    under the name starts afresh). The DDL run, "" if the sink never made it."""
    ddl = ""
    if _exists(conn, event.target):
        statement = sql.SQL("DROP TABLE {}").format(sql.Identifier(*event.target))
        conn.execute(statement)
        ddl = statement.as_string(conn)
    for records in _RECORDS:
        conn.execute(f"DELETE FROM {records} WHERE table_name = %s", (event.name,))
    _record(conn, event, "drop_table", "", ddl)
    return ddl


def rename(conn: psycopg.Connection[Any], event: TableEvent) -> str:
    """Rename the target table to the new name (into another schema too),
    its records along. The DDL run, "" if there was nothing to rename (never
    made, or renamed already)."""
    assert event.renamed_to is not None
    new = event.renamed_to
    new_name = f"{new[0]}.{new[1]}"
    if not _exists(conn, event.target):
        return ""
    if _exists(conn, new):
        raise TerminalError(
            f"the source renamed {event.source} to {new_name}, but the target has"
            f" both {event.name} and {new_name}",
            "keep one of them (drop or rename the other by hand), then start the sink again",
        )
    statements = []
    if new[0] != event.target[0]:
        statements.append(
            sql.SQL("ALTER TABLE {} SET SCHEMA {}").format(
                sql.Identifier(*event.target), sql.Identifier(new[0])
            )
        )
    if new[1] != event.target[1]:
        statements.append(
            sql.SQL("ALTER TABLE {} RENAME TO {}").format(
                sql.Identifier(new[0], event.target[1]), sql.Identifier(new[1])
            )
        )
    for statement in statements:
        conn.execute(statement)
    for records in _RECORDS:
        conn.execute(
            f"UPDATE {records} SET table_name = %s WHERE table_name = %s", (new_name, event.name)
        )
    ddl = "; ".join(s.as_string(conn) for s in statements)
    _record(conn, event, "rename_table", event.name, ddl, table=new_name)
    return ddl


def _record(
    conn: psycopg.Connection[Any],
    event: TableEvent,
    kind: str,
    previous: str,
    ddl: str,
    table: str | None = None,
) -> None:
    """A row in `cdc_schema_changes` (for `cdc status`); operation "none":
    no column of the table changed."""
    conn.execute(
        "INSERT INTO public.cdc_schema_changes (table_name, kind, column_name, previous, action,"
        " operation, source_table, target_ddl) VALUES (%s, %s, '', %s, 'apply', 'none', %s, %s)",
        (table or event.name, kind, previous, event.source, ddl),
    )
