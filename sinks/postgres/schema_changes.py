"""The PostgreSQL target's side of source schema changes (`sinks.schema_changes`):
the DDL of each step, and `public.cdc_schema_changes`, the record of what
the target has been through. Runs in the batch's transaction, so a
rollback undoes the DDL and its record together."""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg import sql

from cdc.ddl import defaults
from cdc.errors import TerminalError
from cdc.postgres.target_types import pg_type
from cdc.schemas import TableSchema
from sinks.schema_changes import Evolution, Step, TargetColumnInfo

RECORDS_DDL = """
CREATE TABLE IF NOT EXISTS public.cdc_schema_changes (
    id bigserial PRIMARY KEY,
    table_name text NOT NULL,
    kind text NOT NULL,
    column_name text NOT NULL,
    previous text NOT NULL DEFAULT '',
    action text NOT NULL,
    operation text NOT NULL,
    source_table text NOT NULL,
    source_ddl text NOT NULL DEFAULT '',
    target_ddl text NOT NULL DEFAULT '',
    applied_at timestamptz NOT NULL DEFAULT now()
)
"""


def column_info(
    conn: psycopg.Connection[Any], target: tuple[str, str]
) -> dict[str, TargetColumnInfo]:
    rows = conn.execute(
        "SELECT a.attname, format_type(a.atttypid, a.atttypmod), NOT a.attnotnull, a.atthasdef"
        " FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid"
        " JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE n.nspname = %s AND c.relname = %s AND a.attnum > 0 AND NOT a.attisdropped"
        " ORDER BY a.attnum",
        target,
    ).fetchall()
    return {
        name: TargetColumnInfo(kind, nullable, has_default)
        for name, kind, nullable, has_default in rows
    }


def evolution(conn: psycopg.Connection[Any], target: tuple[str, str]) -> Evolution:
    """What the record says `target` has been through, in order."""
    found = Evolution()
    rows = conn.execute(
        "SELECT kind, column_name, previous, action, operation FROM public.cdc_schema_changes"
        " WHERE table_name = %s ORDER BY id",
        (f"{target[0]}.{target[1]}",),
    ).fetchall()
    for kind, column, previous, action, operation in rows:
        found.note(Step("", kind, column, action, operation, previous))
    return found


def target_type(schema: TableSchema, column: Any) -> str:
    return pg_type(column, schema.connector)


def run(
    conn: psycopg.Connection[Any], target: tuple[str, str], schema: TableSchema, step: Step
) -> str:
    """Make `step` on the target and record it; the DDL run ("" for none)."""
    statements = _statements(target, schema, step)
    text = "; ".join(s.as_string(conn) for s in statements)
    for statement in statements:
        try:
            with conn.transaction():  # a savepoint: the error is reported, not the abort
                conn.execute(statement)
        except psycopg.Error as exc:
            raise TerminalError(
                f"{target[0]}.{target[1]} cannot follow the source's {step.kind}"
                f" {step.column} ({step.source_ddl or 'from the stream'}): {text}: {exc}",
                f"change {target[0]}.{target[1]} by hand to match the source, then set"
                f" schema_changes.{step.kind}: ignore and start the sink again",
            ) from None
    record = (step.kind, step.column, step.previous, step.action, step.operation, step.table)
    conn.execute(
        "INSERT INTO public.cdc_schema_changes (table_name, kind, column_name, previous, action,"
        " operation, source_table, source_ddl, target_ddl)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
        (f"{target[0]}.{target[1]}", *record, step.source_ddl, text),
    )
    return text


def _statements(target: tuple[str, str], schema: TableSchema, step: Step) -> list[sql.Composed]:
    table = sql.Identifier(*target)
    column = sql.Identifier(step.column)
    alter = sql.SQL("ALTER TABLE {} ").format(table)
    if step.operation == "drop":
        return [alter + sql.SQL("DROP COLUMN IF EXISTS {}").format(column)]
    if step.operation == "drop_not_null":
        return [alter + sql.SQL("ALTER COLUMN {} DROP NOT NULL").format(column)]
    if step.operation == "rename":
        previous = sql.Identifier(step.previous)
        return [alter + sql.SQL("RENAME COLUMN {} TO {}").format(previous, column)]
    new = step.new
    if new is None:
        return []
    kind = sql.SQL(pg_type(new, schema.connector))
    if step.operation == "retype":
        return [
            alter
            + sql.SQL("ALTER COLUMN {} TYPE {} USING {}::{}").format(column, kind, column, kind)
        ]
    # add: the rows already there get the value they hold on the source (a
    # constant default costs no rewrite), then the column takes the source's
    # default for new rows, where the target can evaluate it
    add = sql.SQL("ADD COLUMN IF NOT EXISTS {} {}").format(column, kind)
    if step.fill is not None:
        add += sql.SQL(" DEFAULT ") + sql.SQL(defaults.postgres(step.fill))
        if not new.nullable and step.fill.kind != "null":
            add += sql.SQL(" NOT NULL")
    statements = [alter + add]
    parsed = defaults.parse(new.default, schema.connector) if new.default else None
    if parsed is not None and parsed != step.fill:
        statements.append(
            alter
            + sql.SQL("ALTER COLUMN {} SET DEFAULT ").format(column)
            + sql.SQL(defaults.postgres(parsed))
        )
    elif parsed is None and step.fill is not None:
        statements.append(alter + sql.SQL("ALTER COLUMN {} DROP DEFAULT").format(column))
    return statements
