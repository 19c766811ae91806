"""`rename_column`: the target column gets another name.

    {type: rename_column, table: public.customers, from: name, to: full_name}

A key column may be renamed: the key, `before`, `after` and `unchanged` all
follow. A table named exactly must have the column; tables matched by a
pattern that lack it are left alone.
"""

from __future__ import annotations

import dataclasses

from cdc.changes import Change
from cdc.schemas import TableSchema
from transforms.base import OptionError, SchemaError
from transforms.options import (
    TABLE_HELP,
    Options,
    TableSelector,
    has_column,
    rename_keys,
    table_option,
)

OPTIONS = {
    "table": TABLE_HELP,
    "from": "the column's source name",
    "to": "its name on the target",
}


class RenameColumn:
    def __init__(self, tables: TableSelector, old: str, new: str) -> None:
        self.tables = tables
        self._old = old
        self._new = new

    def schema(self, schema: TableSchema) -> TableSchema:
        if not self.tables.matches(schema) or not has_column(
            self.tables, schema, self._old, "from", "rename_column"
        ):
            return schema
        if self._new in schema.column_names:
            raise SchemaError(
                f"rename_column: {schema.schema}.{schema.table} already has a column {self._new}",
                "choose another to: name, or rename or drop that column first",
            )
        columns = tuple(
            dataclasses.replace(c, name=self._new) if c.name == self._old else c
            for c in schema.columns
        )
        key = tuple(self._new if k == self._old else k for k in schema.key)
        return dataclasses.replace(schema, columns=columns, key=key)

    def apply(self, change: Change) -> Change | None:
        if not self.tables.matches(change.schema):
            return change
        old, new = self._old, self._new
        if change.key is not None and old in change.key:
            change.key = rename_keys(change.key, old, new)
        if change.before is not None and old in change.before:
            change.before = rename_keys(change.before, old, new)
        if change.after is not None and old in change.after:
            change.after = rename_keys(change.after, old, new)
        if old in change.unchanged:
            change.unchanged = tuple(new if c == old else c for c in change.unchanged)
        return change


def build(options: Options) -> RenameColumn:
    tables = table_option(options)
    old, new = options.text("from"), options.text("to")
    if old == new:
        raise OptionError("to", "is the same as from", "name the column's new name")
    return RenameColumn(tables, old, new)
