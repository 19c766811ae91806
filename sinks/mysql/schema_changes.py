"""The MySQL/MariaDB target's side of source schema changes
(`sinks.schema_changes`): the DDL of each step, and `cdc_schema_changes`,
the record of what the target has been through.

DDL commits on its own in MySQL: each step is made idempotent instead
(IF [NOT] EXISTS, checked against information_schema under the DDL lock),
and recorded right after it, so a crash between the two only repeats a
step that then does nothing.
"""

from __future__ import annotations

from typing import Any

import pymysql

from cdc.ddl import defaults
from cdc.errors import TerminalError
from cdc.mysql.dialect import qualified, quote
from cdc.mysql.target_types import mysql_type
from cdc.schemas import Column, TableSchema
from sinks.schema_changes import Evolution, Step, TargetColumnInfo

RECORDS_DDL = """
CREATE TABLE IF NOT EXISTS {db}.cdc_schema_changes (
    id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    table_name VARCHAR(255) NOT NULL,
    kind VARCHAR(32) NOT NULL,
    column_name VARCHAR(255) NOT NULL,
    previous VARCHAR(255) NOT NULL DEFAULT '',
    action VARCHAR(16) NOT NULL,
    operation VARCHAR(16) NOT NULL,
    source_table VARCHAR(255) NOT NULL,
    source_ddl TEXT NOT NULL,
    target_ddl TEXT NOT NULL,
    applied_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    KEY (table_name)
) ENGINE=InnoDB
"""


def column_info(cur: Any, database: str, name: str) -> dict[str, TargetColumnInfo]:
    cur.execute(
        "SELECT COLUMN_NAME, COLUMN_TYPE, IS_NULLABLE, COLUMN_DEFAULT"
        " FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s"
        " ORDER BY ORDINAL_POSITION",
        (database, name),
    )
    return {
        text(column): TargetColumnInfo(text(kind), text(nullable) == "YES", default is not None)
        for column, kind, nullable, default in cur.fetchall()
    }


def evolution(cur: Any, database: str, name: str) -> Evolution:
    """What the record says the table has been through, in order."""
    found = Evolution()
    cur.execute(
        f"SELECT kind, column_name, previous, action, operation FROM {quote(database)}"
        ".cdc_schema_changes WHERE table_name = %s ORDER BY id",
        (f"{database}.{name}",),
    )
    for kind, column, previous, action, operation in cur.fetchall():
        found.note(Step("", kind, column, action, operation, previous))
    return found


def target_type(schema: TableSchema, column: Column) -> str:
    """Never equal to a COLUMN_TYPE: a type change the source names is made."""
    return ""


def run(
    cur: Any,
    database: str,
    name: str,
    schema: TableSchema,
    step: Step,
    info: TargetColumnInfo | None,
    key_collation: str,
) -> str:
    """Make `step` on the target and record it; the DDL run ("" for none).
    `info`: the column as the target has it before the step."""
    statements = _statements(qualified(database, name), schema, step, info, key_collation)
    for statement in statements:
        try:
            cur.execute(statement)
        except pymysql.err.MySQLError as exc:
            raise TerminalError(
                f"{database}.{name} cannot follow the source's {step.kind} {step.column}"
                f" ({step.source_ddl or 'from the stream'}): {statement}: {exc}",
                f"change {database}.{name} by hand to match the source, then set"
                f" schema_changes.{step.kind}: ignore and start the sink again",
            ) from None
    text = "; ".join(statements)
    record = (step.kind, step.column, step.previous, step.action, step.operation, step.table)
    cur.execute(
        f"INSERT INTO {quote(database)}.cdc_schema_changes (table_name, kind, column_name,"
        " previous, action, operation, source_table, source_ddl, target_ddl)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
        (f"{database}.{name}", *record, step.source_ddl, text),
    )
    return text


def _statements(
    table: str, schema: TableSchema, step: Step, info: TargetColumnInfo | None, collation: str
) -> list[str]:
    column = quote(step.column)
    alter = f"ALTER TABLE {table} "
    if step.operation == "drop":
        return [alter + f"DROP COLUMN IF EXISTS {column}"]
    if step.operation == "drop_not_null" and info is not None:
        return [alter + f"MODIFY COLUMN {column} {info.type} NULL"]
    if step.operation == "rename":
        return [alter + f"RENAME COLUMN {quote(step.previous)} TO {column}"]
    new = step.new
    if new is None:
        return []
    key = new.name in schema.key
    kind = mysql_type(new, schema.connector, key, collation)
    if step.operation == "retype":
        return [alter + f"MODIFY COLUMN {column} {kind} {'NULL' if new.nullable else 'NOT NULL'}"]
    # add: the rows already there get the value they hold on the source, then
    # the column takes the source's default for new rows, where MySQL has one
    add = f"ADD COLUMN IF NOT EXISTS {column} {kind}"
    fill = defaults.mysql(step.fill, kind.upper()) if step.fill is not None else None
    if step.fill is not None and fill is None:
        raise TerminalError(
            f"{table}: the value the source's rows hold in the added column {step.column}"
            f" ({step.fill.value}) is no DEFAULT of {kind}",
            f"add {step.column} to {table} by hand with those values, then start the sink again",
        )
    if fill is not None:
        add += f" DEFAULT {fill}"
        if not new.nullable and step.fill is not None and step.fill.kind != "null":
            add += " NOT NULL"
    statements = [alter + add]
    parsed = defaults.parse(new.default, schema.connector) if new.default else None
    default = defaults.mysql(parsed, kind.upper()) if parsed is not None else None
    if default is not None and parsed != step.fill:
        statements.append(alter + f"ALTER COLUMN {column} SET DEFAULT {default}")
    elif default is None and fill is not None:
        statements.append(alter + f"ALTER COLUMN {column} DROP DEFAULT")
    return statements


def text(value: Any) -> str:
    # MySQL 8 returns some information_schema columns as bytes
    return value.decode() if isinstance(value, bytes) else str(value)
