"""Reading a transform's options, and the `table:` selector every built-in takes."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from fnmatch import fnmatchcase
from typing import Any

from cdc.schemas import TableSchema
from transforms.base import OptionError, SchemaError

_GLOB = re.compile(r"[*?\[]")
_TABLE = re.compile(r"[^.\s]+\.[^.\s]+")
TABLE_HELP = "schema.table, a pattern like public.*, or a list of them (source names)"


def is_pattern(text: str) -> bool:
    return _GLOB.search(text) is not None


class Options:
    """The options of one transform. Messages name the option and its expected form, never
    the value (an option may hold a secret such as a hash key)."""

    def __init__(self, raw: Mapping[str, Any], described: Mapping[str, str]) -> None:
        self.raw = dict(raw)
        self._described = described

    def has(self, name: str) -> bool:
        return name in self.raw

    def missing(self, name: str) -> OptionError:
        return OptionError(name, f"required option {name} is missing", self.hint(name))

    def hint(self, name: str) -> str:
        return f"{name}: {self._described.get(name, '...')}"

    def text(self, name: str, default: str | None = None) -> str:
        """A non-empty string; `default` when absent (required when there is none)."""
        if name not in self.raw:
            if default is None:
                raise self.missing(name)
            return default
        value = self.raw[name]
        if not isinstance(value, str) or not value.strip():
            raise OptionError(name, "must be a non-empty string", self.hint(name))
        return value.strip()

    def integer(self, name: str, default: int, minimum: int = 0) -> int:
        value = self.raw.get(name, default)
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise OptionError(name, f"must be a whole number >= {minimum}", self.hint(name))
        return value

    def choice(self, name: str, choices: Sequence[str], default: str | None = None) -> str:
        if "null" in choices and name in self.raw and self.raw[name] is None:
            return "null"  # YAML reads an unquoted `null` as no value at all: it names the choice
        value = self.text(name, default)
        if value not in choices:
            raise OptionError(name, f"must be one of: {', '.join(choices)}", self.hint(name))
        return value

    def names(self, name: str) -> list[str]:
        """A string or a non-empty list of strings."""
        value = self.raw.get(name)
        if value is None and name not in self.raw:
            raise self.missing(name)
        items = [value] if isinstance(value, str) else value
        if (
            not isinstance(items, list)
            or not items
            or not all(isinstance(item, str) and item.strip() for item in items)
        ):
            raise OptionError(name, "must be a name or a list of names", self.hint(name))
        return [item.strip() for item in items]


class TableSelector:
    """Source tables chosen by `schema.table` names or glob patterns (`*`, `?`, `[abc]`)."""

    def __init__(self, patterns: Sequence[str]) -> None:
        self.patterns = tuple(patterns)
        # exact: every pattern names one table, so a missing column is a mistake to report
        # rather than a table to skip
        self.exact = not any(is_pattern(p) for p in self.patterns)
        self._cache: dict[tuple[str, str], bool] = {}

    def matches(self, schema: TableSchema) -> bool:
        name = (schema.schema, schema.table)
        found = self._cache.get(name)
        if found is None:
            text = f"{schema.schema}.{schema.table}"
            found = self._cache[name] = any(fnmatchcase(text, p) for p in self.patterns)
        return found


def table_option(options: Options) -> TableSelector:
    patterns = options.names("table")
    for pattern in patterns:
        if not _TABLE.fullmatch(pattern):
            raise OptionError("table", f"must be {TABLE_HELP}", "for example public.orders")
    return TableSelector(patterns)


def has_column(
    selector: TableSelector, schema: TableSchema, column: str, option: str, kind: str
) -> bool:
    """Whether `schema` has `column`; a table named exactly that lacks it is a `SchemaError`,
    while a table matched by a pattern is just not one this transform applies to."""
    if column in schema.column_names:
        return True
    if selector.exact:
        raise SchemaError(
            f"{kind}: {schema.schema}.{schema.table} has no column {column}",
            f"set {option}: to one of {', '.join(schema.column_names)}",
        )
    return False


def rename_keys(row: dict[str, Any], old: str, new: str) -> dict[str, Any]:
    """`row` with key `old` renamed to `new`, in the same order (key order is key column order)."""
    return {(new if name == old else name): value for name, value in row.items()}
