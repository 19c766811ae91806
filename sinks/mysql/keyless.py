"""A keyless table's statements on a MySQL/MariaDB target (the order and the
conflicts: `sinks.keyless`).

Inserts go as multi-row `INSERT`s. A delete or update changes one row equal
to the old values in every column:

    DELETE FROM t WHERE `a` = 1 AND `b` IS NULL LIMIT 1

A NULL old value is matched by `IS NULL` and any other by `=` (not `<=>`),
which an index over the columns can serve. Text is compared twice: by the
column's collation, which an index serves, then byte for byte
(`CAST(... AS BINARY)`), since a case- or accent-insensitive collation finds
`'e'` equal to `'É'`. A `FLOAT` is compared with the literal made a `FLOAT`
(a double literal never equals a single-precision value), a MySQL `JSON`
with the literal made JSON. `UPDATE` reports the rows it changed, not those
it found: one that changed nothing asks whether the row is there.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol

from cdc.mysql.dialect import quote
from cdc.mysql.target_values import Convert, TargetColumn, converter, key_normalizer
from cdc.schemas import TableSchema
from sinks.mysql.statements import MAX_ROWS, chunked

# compared by collation, then byte for byte
TEXT_TYPES = frozenset(
    {"char", "varchar", "tinytext", "text", "mediumtext", "longtext", "enum", "set"}
)
MysqlRow = dict[str, Any]  # column -> the value PyMySQL sends (None: NULL)


class MysqlTable(Protocol):
    """What the statements need of the applier's target table."""

    columns: dict[str, TargetColumn]
    converters: dict[tuple[str, str], Convert]

    @property
    def ident(self) -> str: ...

    @property
    def qualified(self) -> str: ...


def condition(column: TargetColumn, value: Any, escape: Callable[[Any], str]) -> str:
    """The `WHERE` term that `column` holds `value` (converted), NULL included."""
    name = quote(column.name)
    if value is None:
        return f"{name} IS NULL"
    literal = escape(key_normalizer(column)(value))
    kind = column.data_type
    if kind in TEXT_TYPES or (column.json and kind != "json"):  # MariaDB's JSON is LONGTEXT
        return f"{name} = {literal} AND {name} = CAST({literal} AS BINARY)"
    if kind == "json":
        return f"{name} = CAST({literal} AS JSON)"
    if kind == "float":
        return f"{name} = CAST({literal} AS FLOAT)"
    return f"{name} = {literal}"


def match(table: MysqlTable, old: MysqlRow, escape: Callable[[Any], str]) -> str:
    """`WHERE` condition: a row equal to `old` in each of its columns."""
    terms = [condition(table.columns[name], value, escape) for name, value in old.items()]
    return " AND ".join(terms) or "TRUE"


def delete_sql(table: MysqlTable, old: MysqlRow, escape: Callable[[Any], str]) -> str:
    return f"DELETE FROM {table.ident} WHERE {match(table, old, escape)} LIMIT 1"


def update_sql(
    table: MysqlTable, old: MysqlRow, new: MysqlRow, escape: Callable[[Any], str]
) -> str:
    sets = ", ".join(f"{quote(name)} = {escape(value)}" for name, value in new.items())
    return f"UPDATE {table.ident} SET {sets} WHERE {match(table, old, escape)} LIMIT 1"


def insert_sql(table: MysqlTable, columns: Sequence[str], tuples: Sequence[str]) -> str:
    """One multi-row INSERT of row literals `tuples` ("(1, 'a')") of `columns`."""
    names = ", ".join(quote(name) for name in columns)
    return f"INSERT INTO {table.ident} ({names}) VALUES {', '.join(tuples)}"


class MysqlKeyless:
    """`sinks.keyless.KeylessTable` of one target table, in the batch's transaction."""

    def __init__(
        self, cur: Any, table: MysqlTable, escape: Callable[[Any], str], budget: int
    ) -> None:
        self._cur = cur
        self._table = table
        self._escape = escape
        self._budget = budget  # characters per statement, below max_allowed_packet
        self.name = table.qualified

    def row(self, schema: TableSchema, values: dict[str, Any]) -> MysqlRow:
        out: MysqlRow = {}
        for name, value in values.items():
            column = self._table.columns[name]
            if column.generated:
                continue
            out[name] = None if value is None else self._convert(schema, column, value)
        return out

    def _convert(self, schema: TableSchema, column: TargetColumn, value: Any) -> Any:
        source = schema.column(column.name)
        convert = self._table.converters.get((column.name, source.type))
        if convert is None:
            convert = converter(column, source)
            self._table.converters[(column.name, source.type)] = convert
        try:
            return convert(value)
        except (ValueError, TypeError, ArithmeticError) as exc:
            raise ValueError(f"column {column.name}: {exc}") from exc

    def insert(self, rows: list[MysqlRow]) -> None:
        """A statement per run of rows with the same columns, cut to the budget."""
        escape = self._escape
        start = 0
        while start < len(rows):
            end = start + 1
            while end < len(rows) and rows[end].keys() == rows[start].keys():
                end += 1
            tuples = [
                "(" + ", ".join(escape(v) for v in row.values()) + ")" for row in rows[start:end]
            ]
            sizes = [len(t) for t in tuples]
            for chunk in chunked(tuples, sizes, self._budget, MAX_ROWS):
                self._cur.execute(insert_sql(self._table, list(rows[start]), chunk))
            start = end

    def delete(self, old: MysqlRow) -> bool:
        return bool(self._cur.execute(delete_sql(self._table, old, self._escape)))

    def update(self, old: MysqlRow, new: MysqlRow) -> bool:
        if new and self._cur.execute(update_sql(self._table, old, new, self._escape)):
            return True
        # no row changed: none matched, or the one that did held the new values already
        where = match(self._table, old, self._escape)
        self._cur.execute(f"SELECT 1 FROM {self._table.ident} WHERE {where} LIMIT 1")
        return self._cur.fetchone() is not None
