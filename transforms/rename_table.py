"""`rename_table`: write a table's rows to a target table of another name.

    {type: rename_table, table: public.customers, to: clients}          # public.clients
    {type: rename_table, table: public.customers, to: crm.clients}      # another schema too

Only where the rows land changes (`change.target`); later transforms still
select the table by its source name, and conflict policies and dead letters
name it that way too.
"""

from __future__ import annotations

import re

from cdc.changes import Change
from cdc.schemas import TableSchema
from transforms.base import OptionError
from transforms.options import TABLE_HELP, Options, TableSelector, table_option

OPTIONS = {
    "table": TABLE_HELP,
    "to": "the new name: name (same schema) or schema.name",
}
_NAME = re.compile(r"[^.\s{}]+(\.[^.\s{}]+)?")


class RenameTable:
    def __init__(self, tables: TableSelector, to: str) -> None:
        self.tables = tables
        schema, _, name = to.rpartition(".")
        self._schema = schema or None  # None: keep the target's schema
        self._name = name

    def schema(self, schema: TableSchema) -> TableSchema:
        return schema

    def apply(self, change: Change) -> Change | None:
        if self.tables.matches(change.schema):
            change.target = (self._schema or change.target[0], self._name)
        return change


def build(options: Options) -> RenameTable:
    tables = table_option(options)
    to = options.text("to")
    if not _NAME.fullmatch(to):
        raise OptionError("to", "must be name or schema.name", "for example clients or crm.clients")
    return RenameTable(tables, to)
