"""A source's DROP TABLE and RENAME TABLE on a MySQL/MariaDB target
(`sinks.table_barriers`). DDL commits on its own there, so each step is
safe to run again: a sink that dies before the event is marked done does it
again and finds it done. cdc's own records of the table go with it: its
schema-change history (`cdc_schema_changes`) and its last-writer-wins
versions (`cdc_row_versions`)."""

from __future__ import annotations

from typing import Any

from cdc.changes import TableEvent
from cdc.errors import TerminalError
from cdc.mysql.dialect import qualified, quote

_RECORDS = ("cdc_schema_changes", "cdc_row_versions")


def _exists(cur: Any, database: str, name: str) -> bool:
    cur.execute(
        "SELECT 1 FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s",
        (database, name),
    )
    return cur.fetchone() is not None


def drop(cur: Any, database: str, event: TableEvent) -> str:
    """Drop the target table, forgetting its records (a table created again
    under the name starts afresh). The DDL run, "" if there was no table."""
    name = event.target[1]
    ddl = ""
    if _exists(cur, database, name):
        ddl = f"DROP TABLE IF EXISTS {qualified(database, name)}"
        cur.execute(ddl)
    for records in _RECORDS:
        cur.execute(
            f"DELETE FROM {quote(database)}.{records} WHERE table_name = %s",
            (f"{database}.{name}",),
        )
    _record(cur, database, event, "drop_table", name, "", ddl)
    return ddl


def rename(cur: Any, database: str, event: TableEvent) -> str:
    """Rename the target table, its records along. The DDL run, "" if there
    was nothing to rename (never made, renamed already, or only its source
    schema changed: the target keeps every table in one database)."""
    assert event.renamed_to is not None
    old, new = event.target[1], event.renamed_to[1]
    if old == new or not _exists(cur, database, old):
        return ""
    if _exists(cur, database, new):
        raise TerminalError(
            f"the source renamed {event.source} to {'.'.join(event.renamed_to)}, but the"
            f" target has both {database}.{old} and {database}.{new}",
            "keep one of them (drop or rename the other by hand), then start the sink again",
        )
    ddl = f"RENAME TABLE {qualified(database, old)} TO {qualified(database, new)}"
    cur.execute(ddl)
    for records in _RECORDS:
        cur.execute(
            f"UPDATE {quote(database)}.{records} SET table_name = %s WHERE table_name = %s",
            (f"{database}.{new}", f"{database}.{old}"),
        )
    _record(cur, database, event, "rename_table", new, f"{database}.{old}", ddl)
    return ddl


def _record(
    cur: Any, database: str, event: TableEvent, kind: str, name: str, previous: str, ddl: str
) -> None:
    """A row in `cdc_schema_changes` (for `cdc status`); operation "none":
    no column of the table changed."""
    cur.execute(
        f"INSERT INTO {quote(database)}.cdc_schema_changes (table_name, kind, column_name,"
        " previous, action, operation, source_table, source_ddl, target_ddl)"
        " VALUES (%s, %s, '', %s, 'apply', 'none', %s, '', %s)",
        (f"{database}.{name}", kind, previous, event.source, ddl),
    )
