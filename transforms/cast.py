"""`cast`: change a column's type, converting its values.

    {type: cast, table: public.orders, column: total, to: numeric}
    {type: cast, table: public.events, column: happened, to: timestamptz, on_error: null}

`to`: text, integer, bigint, numeric, double, boolean, date, timestamp or
timestamptz (see transforms/column_types.py for the conversions). A value
that does not convert sends its change to the dead-letter topic, counted,
and the batch goes on (`on_error: dead_letter`, the default); with
`on_error: null` it becomes NULL instead and the column nullable. A key
column may be cast (the key is converted too), but not with `on_error: null`.
"""

from __future__ import annotations

import dataclasses

from cdc.changes import Change
from cdc.schemas import TableSchema
from transforms import column_types
from transforms.base import SchemaError, TransformError
from transforms.options import TABLE_HELP, Options, TableSelector, has_column, table_option

OPTIONS = {
    "table": TABLE_HELP,
    "column": "the column to convert",
    "to": ", ".join(column_types.TYPES),
    "on_error": "dead_letter (default: the change goes to the dead-letter topic) or null",
}


class Cast:
    def __init__(self, tables: TableSelector, column: str, to: str, on_error: str) -> None:
        self.tables = tables
        self.column = column
        self.to = to
        self.on_error = on_error

    def schema(self, schema: TableSchema) -> TableSchema:
        if not self.tables.matches(schema) or not has_column(
            self.tables, schema, self.column, "column", "cast"
        ):
            return schema
        if self.column in schema.key and self.on_error == "null":
            raise SchemaError(
                f"cast: {self.column} is a key column of {schema.schema}.{schema.table},"
                " which cannot become NULL",
                "remove on_error: null (failures then go to the dead-letter topic)",
            )
        old = schema.column(self.column)
        nullable = old.nullable or self.on_error == "null"
        new = column_types.column(old.name, self.to, schema.connector, nullable)
        columns = tuple(new if c.name == self.column else c for c in schema.columns)
        return dataclasses.replace(schema, columns=columns)

    def apply(self, change: Change) -> Change | None:
        if not self.tables.matches(change.schema):
            return change
        column, connector = self.column, change.schema.connector
        for row in (change.key, change.before, change.after):
            if row is None or row.get(column) is None:
                continue
            try:
                row[column] = column_types.convert(row[column], self.to, connector)
            except TransformError as exc:
                if self.on_error != "null":
                    raise TransformError(f"cast {column}: {exc}") from None
                row[column] = None
        return change


def build(options: Options) -> Cast:
    tables = table_option(options)
    column = options.text("column")
    to = options.choice("to", column_types.TYPES)
    on_error = options.choice("on_error", ("dead_letter", "null"), "dead_letter")
    return Cast(tables, column, to, on_error)
