"""`add_column`: a target column the source does not have.

    {type: add_column, table: public.orders, column: origin, value: shop-eu}
    {type: add_column, table: "public.*", column: synced_at, from: now}
    {type: add_column, table: public.orders, column: committed_at, from: source_ts}
    {type: add_column, table: public.orders, column: last_op, from: op}
    {type: add_column, table: public.people, column: full_name, template: "{first} {last}"}

Exactly one of `value` (a literal), `from` (`now`: when the sink transformed
the row; `source_ts`: the source commit time; `op`: c, u or r) or `template`
(`{column}` is that column's value as text, NULL as empty text; `{{` and
`}}` are literal braces). `column_type` sets the column's type (see
transforms/column_types.py); the default follows the value: timestamptz for
now and source_ts, text for op and templates, the literal's own kind for a
value. `now` differs on every replay; `source_ts` does not.

An update that leaves a template's column out (an unchanged TOAST value)
leaves the added column out too, so the target keeps its stored value.
Deletes carry no row values and are left as they are.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from cdc.changes import Change
from cdc.schemas import TableSchema
from cdc.values import encode_datetime
from transforms import column_types
from transforms.base import OptionError, SchemaError, TransformError
from transforms.options import TABLE_HELP, Options, TableSelector, table_option

OPTIONS = {
    "table": TABLE_HELP,
    "column": "the new column's name",
    "value": "a literal every row gets",
    "from": "now, source_ts or op",
    "template": 'text with {column} placeholders, like "{first} {last}"',
    "column_type": f"the column's type: {', '.join(column_types.TYPES)}",
}
SOURCES = ("now", "source_ts", "op")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_PART = re.compile(r"\{\{|\}\}|\{([^{}]*)\}|[{}]|[^{}]+")
Compute = Callable[[Change], Any]


def parse_template(text: str) -> list[tuple[str, bool]]:
    """(text, is_column) parts; `OptionError` at `template` for stray braces."""
    parts: list[tuple[str, bool]] = []
    for match in _PART.finditer(text):
        token, name = match.group(0), match.group(1)
        if token in {"{{", "}}"}:
            parts.append((token[0], False))
        elif name is not None:
            if not name.strip():
                raise OptionError("template", "{} names no column", "write {column_name}")
            parts.append((name.strip(), True))
        elif token in {"{", "}"}:
            raise OptionError("template", f"a lone {token}", "double it ({{ or }}) for a brace")
        else:
            parts.append((token, False))
    return parts


class AddColumn:
    def __init__(
        self,
        tables: TableSelector,
        column: str,
        to: str,
        compute: Compute,
        needs: frozenset[str] = frozenset(),
    ) -> None:
        self.tables = tables
        self.column = column
        self.to = to
        self._compute = compute
        self._needs = needs  # the columns a template reads

    def schema(self, schema: TableSchema) -> TableSchema:
        if not self.tables.matches(schema):
            return schema
        name = f"{schema.schema}.{schema.table}"
        if self.column in schema.column_names:
            raise SchemaError(
                f"add_column: {name} already has a column {self.column}",
                "choose another column: name, or rename the existing one first",
            )
        absent = sorted(self._needs - set(schema.column_names))
        if absent:
            raise SchemaError(
                f"add_column: the template names {', '.join(absent)}, which {name} lacks",
                f"use columns of {name}: {', '.join(schema.column_names)}",
            )
        added = column_types.column(self.column, self.to, schema.connector)
        return dataclasses.replace(schema, columns=(*schema.columns, added))

    def apply(self, change: Change) -> Change | None:
        after = change.after
        if after is None or not self.tables.matches(change.schema):
            return change
        if not self._needs <= after.keys():
            change.unchanged = (*change.unchanged, self.column)
            return change
        try:
            after[self.column] = column_types.convert(
                self._compute(change), self.to, change.schema.connector
            )
        except TransformError as exc:
            raise TransformError(f"add_column {self.column}: {exc}") from None
        return change


def _now(_change: Change) -> str:
    return encode_datetime(datetime.now(UTC))


def _source_ts(change: Change) -> str:
    return encode_datetime(_EPOCH + timedelta(milliseconds=change.ts_ms))


def _op(change: Change) -> str:
    return change.op.value


def _template(parts: list[tuple[str, bool]]) -> Compute:
    def compute(change: Change) -> str:
        row = change.after or {}
        return "".join(
            (column_types.convert(row[text], "text", "") or "") if is_column else text
            for text, is_column in parts
        )

    return compute


def _literal_type(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "bigint"
    return "double" if isinstance(value, float) else "text"


def build(options: Options) -> AddColumn:
    tables = table_option(options)
    column = options.text("column")
    given = [name for name in ("value", "from", "template") if options.has(name)]
    if len(given) != 1:
        raise OptionError(
            given[1] if len(given) > 1 else "value",
            "set exactly one of value, from, template",
            "value: a literal; from: now, source_ts or op; template: '{first} {last}'",
        )
    if given == ["value"]:
        value = options.raw["value"]
        if isinstance(value, dict | list):
            raise OptionError("value", "must be a string, number, boolean or null", "")
        to = options.choice("column_type", column_types.TYPES, _literal_type(value))
        try:
            column_types.convert(value, to, "")  # a literal that cannot be `type` never will
        except TransformError as exc:
            raise OptionError("value", str(exc), f"a value of type {to}") from None
        return AddColumn(tables, column, to, lambda _change: value)
    if given == ["from"]:
        source = options.choice("from", SOURCES)
        default = "text" if source == "op" else "timestamptz"
        to = options.choice("column_type", column_types.TYPES, default)
        compute = {"now": _now, "source_ts": _source_ts, "op": _op}[source]
        if to not in {"text", "timestamptz", "timestamp", "date"} or (
            source == "op" and to != "text"
        ):
            raise OptionError(
                "column_type", f"from: {source} cannot be {to}", "leave column_type out"
            )
        return AddColumn(tables, column, to, compute)
    parts = parse_template(options.text("template"))
    to = options.choice("column_type", column_types.TYPES, "text")
    needs = frozenset(text for text, is_column in parts if is_column)
    return AddColumn(tables, column, to, _template(parts), needs)
