"""`filter`: only rows for which `where` is true reach the target table.

    {type: filter, table: public.customers, where: "region = 'eu' and not deleted"}

The target should hold exactly the source rows that pass, as they are now.
Rows move in and out of the filter, so the filter works on *changes*:

| change                | `where` on the new row | becomes                                       |
|-----------------------|------------------------|-----------------------------------------------|
| insert, snapshot read | true                   | kept                                          |
|                       | false or null          | dropped                                       |
| update                | true                   | kept; an insert if a full `before` failed (*) |
|                       | false or null          | a delete; dropped if a full `before` failed   |
| delete, table-wide (truncate, drop, rename) | - | always kept                   |

(*) the row enters the filtered set, so the target does not have it; an
update that fails leaves the set, so the target must lose the row.

Deletes are never filtered: the old row may have passed under an earlier
state or an earlier version of the filter, and its `before` usually holds
only the key. Deleting a row the target lacks is harmless under the
source-wins, target-wins and last-writer-wins policies (a counted
`delete_missing` conflict); under `conflict: error` it is a dead letter, so
filtered tables should not use that policy. For the same reason an update
that turns into a delete may meet no row, and a row entering the set
without a full `before` (PostgreSQL without REPLICA IDENTITY FULL) arrives
as an update of a missing row: an `update_missing` conflict, which
source-wins and last-writer-wins resolve by inserting it.

Every selected table must have the columns `where` reads (a pattern too:
a filter that cannot judge a table's rows would let them all through).
Unchanged TOAST columns are taken from `before` when it has them; when the
expression needs a column neither carries, the update is kept as it is
(it then only updates a row the target already has).
"""

from __future__ import annotations

from typing import Any

from cdc.changes import Change
from cdc.events import TABLE_OPS, Op
from cdc.schemas import TableSchema
from transforms.base import OptionError, SchemaError
from transforms.expression import Expression, ExpressionError
from transforms.options import TABLE_HELP, Options, TableSelector, table_option

OPTIONS = {
    "table": TABLE_HELP,
    "where": "a condition on column values, like region = 'eu' and total >= 100",
}
_UNKNOWN = object()  # the row lacks a column the expression needs

_KEPT = TABLE_OPS | {Op.DELETE}  # never filtered out: see the table in the docstring


class Filter:
    def __init__(self, tables: TableSelector, where: Expression) -> None:
        self.tables = tables
        self.where = where

    def schema(self, schema: TableSchema) -> TableSchema:
        if self.tables.matches(schema):
            absent = sorted(self.where.columns - set(schema.column_names))
            if absent:
                name = f"{schema.schema}.{schema.table}"
                raise SchemaError(
                    f"filter: {name} has no column {', '.join(absent)}",
                    f"use columns of {name} in where: {', '.join(schema.column_names)}",
                )
        return schema

    def passes(self, row: dict[str, Any] | None) -> bool | object:
        """True, False (also for SQL's unknown), or _UNKNOWN when the row lacks a column."""
        if row is None or not self.where.columns <= row.keys():
            return _UNKNOWN
        return self.where.test(row) is True

    def apply(self, change: Change) -> Change | None:
        if not self.tables.matches(change.schema) or (
            change.op is Op.DELETE or change.op in TABLE_OPS
        ):
            return change
        after = change.after
        if change.op is not Op.UPDATE:
            new = self.passes(after)
            return None if new is False else change
        before = change.before
        # an unchanged (TOAST) column has the value it had before
        merged = {**before, **(after or {})} if before is not None else after
        new = self.passes(merged)
        old = self.passes(before)
        if new is _UNKNOWN:
            return change
        if new is True:
            complete = merged is not None and merged.keys() >= set(change.schema.column_names)
            if old is False and complete:
                # the row enters the set: the target does not have it
                change.op, change.after, change.unchanged = Op.CREATE, merged, ()
            return change
        if old is False:
            return None  # it did not pass before either: the target never had it
        change.op, change.after, change.unchanged = Op.DELETE, None, ()
        return change


def build(options: Options) -> Filter:
    tables = table_option(options)
    text = options.text("where")
    try:
        where = Expression.parse(text)
    except ExpressionError as exc:
        raise OptionError("where", exc.message, exc.hint) from None
    return Filter(tables, where)
