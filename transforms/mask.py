"""`mask`: hide a column's values before they reach the target.

    {type: mask, table: public.customers, column: phone, with: null}
    {type: mask, table: public.customers, column: note, with: fixed, value: "(hidden)"}
    {type: mask, table: public.customers, column: email, with: hash, key_env: CDC_MASK_KEY}
    {type: mask, table: public.customers, column: card, with: partial, keep_last: 4}

- `null`: NULL (the target column becomes nullable);
- `fixed`: `value` for every non-null value;
- `hash`: HMAC-SHA256 of the value's text, hex (64 characters), keyed by
  `key` or the environment variable `key_env`: equal values stay equal
  (joins still work) and nobody without the key can test a guess;
- `partial`: text with all but the first `keep_first` and the last
  `keep_last` characters replaced by `char` (default `*`); a value too short
  to keep anything hidden is masked whole.

NULL stays NULL in every mode. `hash` and `partial` make the column text.
Only `hash` may mask a key column: it is deterministic, so the target still
finds the row; the others would merge distinct rows.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import os
from collections.abc import Callable
from typing import Any

from cdc.changes import Change
from cdc.schemas import TableSchema
from cdc.secrets import register_secret
from transforms import column_types
from transforms.base import OptionError, SchemaError
from transforms.options import TABLE_HELP, Options, TableSelector, has_column, table_option

OPTIONS = {
    "table": TABLE_HELP,
    "column": "the column to mask",
    "with": "null, fixed, hash or partial",
    "value": "with fixed: what every value becomes",
    "key": "with hash: the HMAC key (a long random string; ${ENV} works)",
    "key_env": "with hash: the environment variable holding the HMAC key",
    "keep_first": "with partial: how many leading characters stay visible (default 0)",
    "keep_last": "with partial: how many trailing characters stay visible (default 0)",
    "char": "with partial: the masking character (default *)",
}
MODES = ("null", "fixed", "hash", "partial")
MIN_KEY_LENGTH = 16
_MODE_OPTIONS = {
    "fixed": {"value"},
    "hash": {"key", "key_env"},
    "partial": {"keep_first", "keep_last", "char"},
}


class Mask:
    def __init__(
        self, tables: TableSelector, column: str, mode: str, masker: Callable[[Any], Any]
    ) -> None:
        self.tables = tables
        self.column = column
        self.mode = mode
        self._mask = masker

    def schema(self, schema: TableSchema) -> TableSchema:
        if not self.tables.matches(schema) or not has_column(
            self.tables, schema, self.column, "column", "mask"
        ):
            return schema
        if self.column in schema.key and self.mode != "hash":
            raise SchemaError(
                f"mask: {self.column} is a key column of {schema.schema}.{schema.table};"
                f" with: {self.mode} would merge distinct rows",
                "use with: hash for a key column (equal values stay equal)",
            )
        old = schema.column(self.column)
        if self.mode in {"hash", "partial"}:
            new = column_types.column(old.name, "text", schema.connector, old.nullable)
        else:
            new = dataclasses.replace(old, nullable=old.nullable or self.mode == "null")
        columns = tuple(new if c.name == self.column else c for c in schema.columns)
        return dataclasses.replace(schema, columns=columns)

    def apply(self, change: Change) -> Change | None:
        if not self.tables.matches(change.schema):
            return change
        column = self.column
        for row in (change.key, change.before, change.after):
            # the key holds the column only if it is a key column, which only hash may mask
            if row is not None and row.get(column) is not None:
                row[column] = self._mask(row[column])
        return change


def _text(value: Any) -> str:
    return str(column_types.convert(value, "text", ""))


def _hasher(key: bytes) -> Callable[[Any], str]:
    def mask(value: Any) -> str:
        return hmac.new(key, _text(value).encode(), hashlib.sha256).hexdigest()

    return mask


def _partial(first: int, last: int, char: str) -> Callable[[Any], str]:
    def mask(value: Any) -> str:
        text = _text(value)
        if len(text) <= first + last:
            return char * len(text)
        return text[:first] + char * (len(text) - first - last) + text[len(text) - last :]

    return mask


def _hash_key(options: Options) -> bytes:
    if options.has("key") == options.has("key_env"):
        message = "with: hash needs key or key_env (one of them)"
        raise OptionError("key", message, options.hint("key"))
    if options.has("key"):
        key = options.raw["key"]
        if not isinstance(key, str):
            raise OptionError("key", "must be a string", options.hint("key"))
    else:
        name = options.text("key_env")
        if name not in os.environ:
            raise OptionError(
                "key_env", f"environment variable {name} is not set", "export it before running cdc"
            )
        key = os.environ[name]
    option = "key" if options.has("key") else "key_env"
    if len(key) < MIN_KEY_LENGTH:
        raise OptionError(
            option,
            f"the key must be at least {MIN_KEY_LENGTH} characters",
            "for example the output of: openssl rand -hex 32",
        )
    register_secret(key)  # `cdc config check` prints the options: never the key
    return key.encode()


def build(options: Options) -> Mask:
    tables = table_option(options)
    column = options.text("column")
    mode = options.choice("with", MODES)
    for other, names in _MODE_OPTIONS.items():
        stray = sorted(name for name in names if options.has(name))
        if other != mode and stray:
            raise OptionError(stray[0], f"applies to with: {other}, not with: {mode}", "remove it")
    masker: Callable[[Any], Any]
    if mode == "null":
        masker = lambda _value: None  # noqa: E731
    elif mode == "fixed":
        if not options.has("value"):
            raise options.missing("value")
        fixed = options.raw["value"]
        if isinstance(fixed, dict | list):
            raise OptionError("value", "must be a string, number or boolean", options.hint("value"))
        masker = lambda _value: fixed  # noqa: E731
    elif mode == "hash":
        masker = _hasher(_hash_key(options))
    else:
        char = options.text("char", "*")
        if len(char) != 1:
            raise OptionError("char", "must be one character", "for example * or #")
        first, last = options.integer("keep_first", 0), options.integer("keep_last", 0)
        masker = _partial(first, last, char)
    return Mask(tables, column, mode, masker)
