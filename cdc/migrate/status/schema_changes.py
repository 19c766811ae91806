"""The source schema changes a pipeline's target has followed or ignored, as
the sinks record them in `cdc_schema_changes` (`sinks.schema_changes`)."""

from __future__ import annotations

from dataclasses import dataclass

from cdc.engine import Engine

TABLE = "cdc_schema_changes"
SHOWN = 20  # the latest; the table keeps them all


@dataclass
class SchemaChangeStatus:
    at: str  # when the target took it, ISO 8601
    table: str  # the target table
    kind: str  # add_column, drop_column, rename_column, alter_column_type
    column: str
    action: str  # apply or ignore
    previous: str  # a rename: the old name
    source_ddl: str
    target_ddl: str


def schema_changes(target: Engine) -> list[SchemaChangeStatus]:
    """The latest schema changes on `target`, oldest first; none before any."""
    query = (
        "SELECT applied_at, table_name, kind, column_name, action, previous, source_ddl,"
        f" target_ddl FROM {target.own_table(TABLE)} ORDER BY id DESC LIMIT {SHOWN}"
    )
    try:
        with target.verify.connect() as session:
            rows = session.rows(query)
    except target.missing_table:
        return []
    return [
        SchemaChangeStatus(at.isoformat(timespec="seconds"), *(str(v) for v in rest))
        for at, *rest in reversed(rows)
    ]
