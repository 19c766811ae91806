"""`columns`: keep only some columns of a table, or leave some out.

    {type: columns, table: public.customers, include: [id, name, email]}
    {type: columns, table: "public.*", exclude: [password_hash, "internal_*"]}

Names may be glob patterns. Key columns cannot be left out: the target finds
a row by its key, so a table whose key would lose a column stops the sink
with the remedy. A plain name (not a pattern) the table lacks is reported too,
when the table is named exactly: a typo must not silently drop a column.
"""

from __future__ import annotations

import dataclasses
from fnmatch import fnmatchcase

from cdc.changes import Change
from cdc.schemas import TableSchema
from transforms.base import OptionError, SchemaError
from transforms.options import (
    TABLE_HELP,
    Options,
    TableSelector,
    is_pattern,
    table_option,
)

OPTIONS = {
    "table": TABLE_HELP,
    "include": "the columns to keep, a list of names or patterns (key columns included)",
    "exclude": "the columns to leave out, a list of names or patterns (not key columns)",
}


class Columns:
    def __init__(self, tables: TableSelector, patterns: list[str], include: bool) -> None:
        self.tables = tables
        self._patterns = patterns
        self._include = include
        self._keep: dict[str, bool] = {}  # by column name: the decision is the same everywhere

    def keeps(self, column: str) -> bool:
        found = self._keep.get(column)
        if found is None:
            matched = any(fnmatchcase(column, p) for p in self._patterns)
            found = self._keep[column] = matched == self._include
        return found

    def schema(self, schema: TableSchema) -> TableSchema:
        if not self.tables.matches(schema):
            return schema
        option = "include" if self._include else "exclude"
        name = f"{schema.schema}.{schema.table}"
        if self.tables.exact:
            absent = [
                p for p in self._patterns if not is_pattern(p) and p not in schema.column_names
            ]
            if absent:
                raise SchemaError(
                    f"columns: {name} has no column {', '.join(absent)}",
                    f"name columns of {name} in {option}: {', '.join(schema.column_names)}",
                )
        dropped_key = [k for k in schema.key if not self.keeps(k)]
        if dropped_key:
            fix = "add them to include" if self._include else "remove them from exclude"
            raise SchemaError(
                f"columns: the key columns {', '.join(dropped_key)} of {name} cannot be left out",
                f"{fix}: the target finds each row by its key",
            )
        kept = tuple(c for c in schema.columns if self.keeps(c.name))
        return dataclasses.replace(schema, columns=kept)

    def apply(self, change: Change) -> Change | None:
        if not self.tables.matches(change.schema):
            return change
        if change.before is not None:
            change.before = {k: v for k, v in change.before.items() if self.keeps(k)}
        if change.after is not None:
            change.after = {k: v for k, v in change.after.items() if self.keeps(k)}
        if change.unchanged:
            change.unchanged = tuple(c for c in change.unchanged if self.keeps(c))
        return change


def build(options: Options) -> Columns:
    tables = table_option(options)
    if options.has("include") == options.has("exclude"):
        raise OptionError(
            "include",
            "set include or exclude (one of them)",
            "include: [id, name] keeps those; exclude: [secret] drops those",
        )
    include = options.has("include")
    return Columns(tables, options.names("include" if include else "exclude"), include)
