"""Target DDL for a MySQL/MariaDB target, shared by `cdc schema` and the
sinks' `create_tables` (types from `cdc.mysql.target_types`).

Every table lives in the target DSN's database; the source schema is not
part of the name (as in the sink)."""

from __future__ import annotations

from cdc.ddl import defaults as ddl_defaults
from cdc.ddl.model import AFTER_COPY, TABLES, Index, Notes, Statement, TableDef
from cdc.ddl.type_notes import on_update_comment, type_note
from cdc.mysql.dialect import qualified, quote
from cdc.mysql.target_types import mysql_type
from cdc.schemas import Column

ENGINE = "mysql"
PROBE = "cdc_probe"  # a scratch TEMPORARY table: MySQL parses the DDL, we read the result
# MySQL indexes only a prefix of these; 255 characters stay within InnoDB's 3072 bytes
_PREFIXED = ("LONGTEXT", "TEXT", "TINYTEXT", "MEDIUMTEXT", "LONGBLOB", "BLOB")
INDEX_PREFIX = 255


def _default(table: TableDef, column: Column, kind: str, notes: Notes) -> str:
    expression = table.defaults.get(column.name)
    if expression is None:
        return ""
    parsed = ddl_defaults.parse(expression, table.schema.connector)
    rendered = None if parsed is None else ddl_defaults.mysql(parsed, kind)
    if rendered is None:
        notes.warn(table, column.name, f"default {expression} has no translation: left out")
        return ""
    return f" DEFAULT {rendered}"


def _indexed(table: TableDef) -> set[str]:
    """Columns that are the first of the primary key or a unique key: the only
    ones MySQL lets be AUTO_INCREMENT."""
    firsts = [table.key, *(u.columns for u in table.uniques)]
    return {columns[0] for columns in firsts if columns}


def _column(table: TableDef, column: Column, key_collation: str, notes: Notes) -> str:
    connector = table.schema.connector
    unique_columns = {c for u in table.uniques for c in u.columns}
    key = column.name in table.key or column.name in unique_columns
    kind = mysql_type(column, connector, key, key_collation)
    note = type_note(column, connector, ENGINE, kind, key)
    if note is not None:
        notes.add(table.qualified, column.name, *note, type_change=True)
    null = " NULL" if column.nullable and column.name not in table.key else " NOT NULL"
    generated = next((g for g in table.generated if g.name == column.name), None)
    if generated is not None and connector == ENGINE:
        how = "STORED" if generated.stored else "VIRTUAL"
        return f"{quote(column.name)} {kind} AS ({generated.expression}) {how}"
    text = f"{quote(column.name)} {kind}{null}"
    if column.name in table.identity:
        if column.name in _indexed(table):
            return text + " AUTO_INCREMENT"
        notes.warn(table, column.name, "not AUTO_INCREMENT: MySQL wants it first in a key")
    return text + _default(table, column, kind, notes)


def _index(table: TableDef, types: dict[str, str], index: Index, notes: Notes) -> str | None:
    if index.definition or not index.columns:
        notes.warn(table, "", f"index {index.name} (over expressions) left out")
        return None
    parts = []
    for name in index.columns:
        if types[name] == "JSON":
            notes.warn(table, name, f"index {index.name} left out: MySQL indexes no JSON column")
            return None
        prefix = f"({INDEX_PREFIX})" if types[name].startswith(_PREFIXED) else ""
        parts.append(quote(name) + prefix)
    return f"{'UNIQUE ' if index.unique else ''}INDEX {quote(index.name)} ({', '.join(parts)})"


def render(
    table: TableDef, target: tuple[str, str], key_collation: str, notes: Notes
) -> list[Statement]:
    """The statements that create `table` as `target` (database, table): the
    table with its keys, then secondary indexes and foreign keys."""
    database, name = target
    ident = qualified(database, name)
    lines = [_column(table, column, key_collation, notes) for column in table.columns]
    if table.schema.connector != ENGINE:
        for column in table.generated:
            notes.warn(table, column.name, f"generated column ({column.expression}) left out")
    if table.key:  # a keyless table gets none (`TableDef.key`)
        lines.append(f"PRIMARY KEY ({', '.join(quote(k) for k in table.key)})")
    for unique in table.uniques:
        columns = ", ".join(quote(c) for c in unique.columns)
        lines.append(f"UNIQUE KEY {quote(unique.name)} ({columns})")
    body = ",\n    ".join(lines)
    tail = f" (\n    {body}\n) ENGINE=InnoDB DEFAULT CHARACTER SET utf8mb4"
    out = [
        Statement(
            TABLES,
            "table",
            database,
            name,
            name,
            f"CREATE TABLE IF NOT EXISTS {ident}{tail}",
            probe_sql=f"CREATE TEMPORARY TABLE {qualified(database, PROBE)}{tail}",
            comment=on_update_comment(table, ENGINE, notes),
        )
    ]
    types = {
        c.name: mysql_type(c, table.schema.connector, False, key_collation) for c in table.columns
    }
    for index in table.indexes:
        definition = _index(table, types, index, notes)
        if definition is not None:
            sql = f"ALTER TABLE {ident} ADD {definition}"
            out.append(Statement(AFTER_COPY, "index", database, name, index.name, sql))
    for fk in table.foreign_keys:
        sql = (
            f"ALTER TABLE {ident} ADD CONSTRAINT {quote(fk.name)}"
            f" FOREIGN KEY ({', '.join(quote(c) for c in fk.columns)})"
            f" REFERENCES {qualified(database, fk.ref_table)}"
            f" ({', '.join(quote(c) for c in fk.ref_columns)}){fk.actions}"
        )
        out.append(Statement(AFTER_COPY, "foreign_key", database, name, fk.name, sql))
    return out
