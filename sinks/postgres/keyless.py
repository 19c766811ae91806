"""A keyless table's statements on a PostgreSQL target (the order and the
conflicts: `sinks.keyless`).

Inserts are COPYed. A delete or update finds one row equal to the old values
in every column and changes it by its physical address:

    DELETE FROM t WHERE (tableoid, ctid) =
        (SELECT tableoid, ctid FROM t WHERE a = $1::integer AND b IS NULL LIMIT 1)

`tableoid` keeps two partitions' rows at the same `ctid` apart. A NULL old
value is matched by `IS NULL` rather than `IS NOT DISTINCT FROM`, which no
index can serve: `a = $1` can use an index over the columns, so a target
table with one is not scanned for each change.

A `json` column keeps its input's spacing (a row the direct copy wrote holds
the source's text, one the sink wrote the wire's): it is compared as `jsonb`,
`j::jsonb = ($1::json)::jsonb`. Types without an equality (xml and the
geometric types; `box =` compares areas) are matched on their text form,
the parameter cast to the column's type first, so both sides are printed by
the same output function: `p::text = ($1::point)::text`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql

from cdc.schemas import TableSchema
from sinks.postgres.copy_text import NULL, escape
from sinks.postgres.tables import TargetTable, TargetTables

# no equality operator, or one that is not identity: compared as text
TEXT_COMPARED = frozenset({"xml", "point", "line", "lseg", "box", "path", "polygon", "circle"})
_FIND = "SELECT tableoid, ctid FROM {table} WHERE {match} LIMIT 1"


@dataclass(frozen=True, slots=True)
class PgRow:
    table: TargetTable  # the target table written through the row's columns
    values: dict[str, str | None]  # PostgreSQL text input; None: NULL


def compared_as(target_type: str) -> str:
    """The type a column of `target_type` (format_type()) is matched as: its
    own, jsonb for json, text for a type without an equality."""
    base = target_type.removesuffix("[]").split("(", 1)[0]
    if base == "json":
        return target_type.replace("json", "jsonb", 1)
    return "text" if base in TEXT_COMPARED else target_type


def match(table: TargetTable, old: dict[str, str | None]) -> tuple[sql.Composable, list[str]]:
    """`WHERE` condition: a row equal to `old` in each of its columns; its parameters."""
    parts: list[sql.Composable] = []
    params: list[str] = []
    for name, value in old.items():
        column = sql.Identifier(name)
        if value is None:
            parts.append(sql.SQL("{} IS NULL").format(column))
            continue
        kind = table.types[name]
        compared = compared_as(kind)
        if compared == kind:
            term = sql.SQL("{} = %s::{}").format(column, sql.SQL(kind))
        else:
            term = sql.SQL("{0}::{2} = (%s::{1})::{2}").format(
                column, sql.SQL(kind), sql.SQL(compared)
            )
        parts.append(term)
        params.append(value)
    return sql.SQL(" AND ").join(parts) if parts else sql.SQL("TRUE"), params


def delete_sql(table: TargetTable, old: dict[str, str | None]) -> tuple[sql.Composed, list[str]]:
    where, params = match(table, old)
    found = sql.SQL(_FIND).format(table=table.ident, match=where)
    statement = sql.SQL("DELETE FROM {} WHERE (tableoid, ctid) = ({})").format(table.ident, found)
    return statement, params


def update_sql(
    table: TargetTable, old: dict[str, str | None], new: dict[str, str | None]
) -> tuple[sql.Composed, list[str | None]]:
    sets = sql.SQL(", ").join(
        sql.SQL("{} = %s::{}").format(sql.Identifier(name), sql.SQL(table.types[name]))
        for name in new
    )
    where, params = match(table, old)
    found = sql.SQL(_FIND).format(table=table.ident, match=where)
    statement = sql.SQL("UPDATE {} SET {} WHERE (tableoid, ctid) = ({})").format(
        table.ident, sets, found
    )
    return statement, [*new.values(), *params]


class PgKeyless:
    """`sinks.keyless.KeylessTable` of one target table, in the batch's transaction."""

    def __init__(
        self, conn: psycopg.Connection[Any], tables: TargetTables, target: tuple[str, str]
    ) -> None:
        self._conn = conn
        self._tables = tables
        self._target = target
        self.name = f"{target[0]}.{target[1]}"

    def row(self, schema: TableSchema, values: dict[str, Any]) -> PgRow:
        table = self._tables.get(self._target, [schema])
        encoders = table.encoders
        return PgRow(
            table,
            {
                name: None if value is None else encoders[name](value)
                for name, value in values.items()
                if name in encoders
            },
        )

    def insert(self, rows: list[PgRow]) -> None:
        """COPY, a statement per run of rows with the same columns."""
        start = 0
        while start < len(rows):
            first = rows[start]
            end = start + 1
            while (
                end < len(rows)
                and rows[end].table is first.table
                and rows[end].values.keys() == first.values.keys()
            ):
                end += 1
            columns = sql.SQL(", ").join(sql.Identifier(name) for name in first.values)
            copy_sql = sql.SQL("COPY {} ({}) FROM STDIN").format(first.table.ident, columns)
            with self._conn.cursor() as cur, cur.copy(copy_sql) as copy:
                for row in rows[start:end]:
                    fields = (NULL if v is None else escape(v) for v in row.values.values())
                    copy.write("\t".join(fields) + "\n")
            start = end

    def delete(self, old: PgRow) -> bool:
        statement, params = delete_sql(old.table, old.values)
        return self._conn.execute(statement, params).rowcount > 0

    def update(self, old: PgRow, new: PgRow) -> bool:
        if not new.values:  # every column left out as unchanged: is the row there?
            where, params = match(old.table, old.values)
            found = sql.SQL(_FIND).format(table=old.table.ident, match=where)
            return self._conn.execute(found, params).fetchone() is not None
        statement, values = update_sql(old.table, old.values, new.values)
        return self._conn.execute(statement, values).rowcount > 0
