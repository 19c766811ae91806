"""`route`: send tables' rows to another target table; `{schema}` and `{table}` in `to`
stand for the source table's names, so one route can move many tables.

    {type: route, table: public.customers, to: crm.customers}
    {type: route, table: "legacy.*", to: "archive.legacy_{table}"}

Several source tables routed to one target table share it: their keys must
not collide, and the target is created from the first one's columns. Like
`rename_table`, only `change.target` changes; tables keep their source names
for later selectors, conflict policies and dead letters.
"""

from __future__ import annotations

import re

from cdc.changes import Change
from cdc.schemas import TableSchema
from transforms.base import OptionError
from transforms.options import TABLE_HELP, Options, TableSelector, table_option

OPTIONS = {
    "table": TABLE_HELP,
    "to": "the target schema.table; {schema} and {table} stand for the source's names",
}
_PLACEHOLDER = re.compile(r"\{(\w*)\}")
_TARGET = re.compile(r"[^.\s{}]+\.[^.\s{}]+")


class Route:
    def __init__(self, tables: TableSelector, to: str) -> None:
        self.tables = tables
        self._to = to
        self._targets: dict[tuple[str, str], tuple[str, str]] = {}

    def schema(self, schema: TableSchema) -> TableSchema:
        return schema

    def apply(self, change: Change) -> Change | None:
        source = change.schema
        if self.tables.matches(source):
            target = self._targets.get((source.schema, source.table))
            if target is None:
                target = self._targets[(source.schema, source.table)] = self.target_of(
                    source.schema, source.table
                )
            change.target = target
        return change

    def target_of(self, schema: str, table: str) -> tuple[str, str]:
        names = {"schema": schema, "table": table}
        text = _PLACEHOLDER.sub(lambda m: names[m.group(1)], self._to)
        target_schema, _, target_table = text.partition(".")
        return target_schema, target_table


def build(options: Options) -> Route:
    tables = table_option(options)
    to = options.text("to")
    unknown = [name for name in _PLACEHOLDER.findall(to) if name not in {"schema", "table"}]
    if unknown:
        raise OptionError("to", f"unknown placeholder {{{unknown[0]}}}", "use {schema} or {table}")
    if not _TARGET.fullmatch(_PLACEHOLDER.sub("x", to)):
        raise OptionError(
            "to", "must be schema.table", "for example crm.customers or archive.{table}"
        )
    return Route(tables, to)
