"""The planned path of a PostgreSQL table batch: which keys exist, then the
plan applied through the table's staging table.

Every key's net change is COPYed into the temporary staging table, marked by
its kind, then applied with one `DELETE ... USING`, one
`INSERT ... ON CONFLICT DO UPDATE` and, for rows whose unchanged TOAST
columns were left out, one `UPDATE ... FROM` per column set: a handful of
statements per table and batch, however many rows.
"""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg import sql

from cdc.changes import KeyValues
from sinks.plan import TablePlan
from sinks.postgres.tables import TargetTable

DELETE, UPSERT, PARTIAL = 0, 1, 2  # cdc_kind of a staged row; PARTIAL + n: column set n


def existing(
    conn: psycopg.Connection[Any], table: TargetTable, keys: list[KeyValues]
) -> set[KeyValues]:
    """Which keys have a target row (one query for the whole batch)."""
    encoded = [[table.encoders[name](key[i]) for key in keys] for i, name in enumerate(table.key)]
    arrays = sql.SQL(", ").join(sql.SQL("%s::text[]") for _ in table.key)
    names = [sql.Identifier(f"k{i}") for i in range(len(table.key))]
    match = sql.SQL(" AND ").join(
        sql.SQL("t.{} = k.{}::{}").format(sql.Identifier(col), names[i], sql.SQL(table.types[col]))
        for i, col in enumerate(table.key)
    )
    query = sql.SQL(
        "SELECT k.n FROM unnest({}) WITH ORDINALITY AS k({}, n)"
        " WHERE EXISTS (SELECT 1 FROM {} t WHERE {})"
    ).format(arrays, sql.SQL(", ").join(names), table.ident, match)
    rows = conn.execute(query, encoded).fetchall()
    return {keys[n - 1] for (n,) in rows}


def stage_and_apply(conn: psycopg.Connection[Any], table: TargetTable, plan: TablePlan) -> None:
    columns = list(table.types)
    stage = sql.Identifier(table.stage)
    staged = sql.SQL(", ").join(sql.Identifier(c) for c in [*columns, "cdc_kind"])
    key_index = [columns.index(k) for k in table.key]
    with conn.cursor() as cur:
        with cur.copy(sql.SQL("COPY {} ({}) FROM STDIN").format(stage, staged)) as copy:
            suffix = f"\t{DELETE}"
            copy.write("".join(table.lines.key_line(key_index, k, suffix) for k in plan.deletes))
            sets = [(UPSERT, rows) for rows in [plan.upserts] if rows]
            sets += [(PARTIAL + n, rows) for n, rows in enumerate(plan.partial.values())]
            for kind, rows in sets:
                for text in table.lines.chunks(rows, f"\t{kind}"):
                    copy.write(text)
        on_key = sql.SQL(" AND ").join(
            sql.SQL("t.{0} = s.{0}").format(sql.Identifier(k)) for k in table.key
        )
        if plan.deletes:
            cur.execute(
                sql.SQL("DELETE FROM {} t USING {} s WHERE s.cdc_kind = {} AND {}").format(
                    table.ident, stage, sql.Literal(DELETE), on_key
                )
            )
        if plan.upserts:
            _upsert(cur, table, columns)
        for n, column_set in enumerate(plan.partial):
            assignments = sql.SQL(", ").join(
                sql.SQL("{0} = s.{0}").format(sql.Identifier(c))
                for c in column_set
                if c not in table.key
            )
            cur.execute(
                sql.SQL("UPDATE {} t SET {} FROM {} s WHERE s.cdc_kind = {} AND {}").format(
                    table.ident, assignments, stage, sql.Literal(PARTIAL + n), on_key
                )
            )


def _upsert(cur: psycopg.Cursor[Any], table: TargetTable, columns: list[str]) -> None:
    names = sql.SQL(", ").join(sql.Identifier(c) for c in columns)
    others = [c for c in columns if c not in table.key]
    action = (
        sql.SQL("DO UPDATE SET ")
        + sql.SQL(", ").join(
            sql.SQL("{0} = EXCLUDED.{0}").format(sql.Identifier(c)) for c in others
        )
        if others
        else sql.SQL("DO NOTHING")
    )
    cur.execute(
        sql.SQL(
            "INSERT INTO {} ({}) SELECT {} FROM {} WHERE cdc_kind = {} ON CONFLICT ({}) {}"
        ).format(
            table.ident,
            names,
            names,
            sql.Identifier(table.stage),
            sql.Literal(UPSERT),
            sql.SQL(", ").join(sql.Identifier(k) for k in table.key),
            action,
        )
    )
