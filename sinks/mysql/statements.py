"""The MySQL applier's bulk statements, as text built from SQL literals that
`pymysql.Connection.escape` made, cut so that none exceeds the row count
or the max_allowed_packet budget given.

Literals rather than `%s` parameters: PyMySQL would escape the same values
again on every statement, and a statement's size must be known to cut it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from cdc.mysql.dialect import qualified, quote

MAX_ROWS = 1000  # rows per statement: long enough to amortise, short enough to parse fast
PARTIAL_ROWS = 200  # a CASE list is scanned for every updated row: keep it short
T = TypeVar("T")


@dataclass(frozen=True)
class Session:
    """What the statements of one target connection are built with."""

    database: str  # the DSN's: cdc's own tables and every target table
    escape: Callable[[Any], str]  # the connection's: a value as an SQL literal
    budget: int  # characters per statement, below max_allowed_packet
    alias: bool  # `upserts` in MySQL 8.0.19+'s `AS new` form

    def table(self, name: str) -> str:
        return qualified(self.database, name)


def chunked(items: Sequence[T], sizes: Sequence[int], budget: int, rows: int) -> Iterator[list[T]]:
    """Runs of at most `rows` items whose sizes add up to at most `budget`
    (an item larger than the budget goes alone)."""
    chunk: list[T] = []
    total = 0
    for item, size in zip(items, sizes, strict=True):
        if chunk and (len(chunk) >= rows or total + size > budget):
            yield chunk
            chunk, total = [], 0
        chunk.append(item)
        total += size + 1
    if chunk:
        yield chunk


def _tuples(literals: Sequence[str], budget: int) -> Iterator[str]:
    for chunk in chunked(literals, [len(k) for k in literals], budget, MAX_ROWS):
        yield ", ".join(chunk)


def key_columns(names: Sequence[str]) -> str:
    return "(" + ", ".join(quote(n) for n in names) + ")"


def selects(ident: str, names: Sequence[str], keys: Sequence[str], budget: int) -> Iterator[str]:
    """Which of `keys` (row literals "(1, 'a')") the table holds."""
    columns = ", ".join(quote(n) for n in names)
    for tuples in _tuples(keys, budget):
        yield f"SELECT {columns} FROM {ident} WHERE ({columns}) IN ({tuples})"


def deletes(ident: str, names: Sequence[str], keys: Sequence[str], budget: int) -> Iterator[str]:
    for tuples in _tuples(keys, budget):
        yield f"DELETE FROM {ident} WHERE {key_columns(names)} IN ({tuples})"


def upserts(
    ident: str,
    columns: Sequence[str],
    rows: Sequence[str],
    update: Sequence[str],
    budget: int,
    alias: bool,
    also: str = "",
) -> Iterator[str]:
    """Multi-row INSERT of `rows` ("(1, 'a', ...)") that updates the `update`
    columns of rows already there. `alias`: MySQL 8.0.19+'s `AS new` form
    (8.0.20 deprecates VALUES(col), which MariaDB alone understands)."""
    head = f"INSERT INTO {ident} ({', '.join(quote(c) for c in columns)}) VALUES "
    if alias:
        sets = [f"{quote(c)} = cdc_new.{quote(c)}" for c in update]
        tail = " AS cdc_new ON DUPLICATE KEY UPDATE "
    else:
        sets = [f"{quote(c)} = VALUES({quote(c)})" for c in update]
        tail = " ON DUPLICATE KEY UPDATE "
    tail += ", ".join(sets + ([also] if also else []))
    for tuples in _tuples(rows, budget):
        yield head + tuples + tail


def partial_updates(
    ident: str,
    names: Sequence[str],
    columns: Sequence[str],
    rows: Sequence[dict[str, str]],
    budget: int,
) -> Iterator[str]:
    """Set only `columns` of existing rows (column -> literal, key included).

    Not an upsert: in strict mode its INSERT half fails on a NOT NULL column
    left out, even when the row exists."""
    targets = [c for c in columns if c not in names]
    if not targets:
        return
    key = key_columns(names)
    keyed = [("(" + ", ".join(row[n] for n in names) + ")", row) for row in rows]
    sizes = [sum(len(v) for v in row.values()) for row in rows]
    for chunk in chunked(keyed, sizes, budget, PARTIAL_ROWS):
        # the WHENs read only key columns, which no assignment changes, so
        # MySQL's left-to-right SET order cannot matter
        sets = ", ".join(
            f"{quote(c)} = CASE "
            + " ".join(f"WHEN {key} = {literal} THEN {row[c]}" for literal, row in chunk)
            + f" ELSE {quote(c)} END"
            for c in targets
        )
        where = ", ".join(literal for literal, _ in chunk)
        yield f"UPDATE {ident} SET {sets} WHERE {key} IN ({where})"
