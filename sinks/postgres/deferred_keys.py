"""The keys and indexes of a PostgreSQL target table, built once after its
direct copy instead of maintained row by row during it (as `pg_restore` and
`pgcopydb` do): loading a bare table and sorting each index once is faster.

Only a table the copy has not started (no progress row past its plan) and
that is empty is loaded bare: rows already there must keep their key, which
the copy's chunk atomicity and the sink's upserts rely on. A table that
another table's foreign key references keeps everything (the foreign key
depends on the key's index), as do exclusion and deferrable constraints.

State on the target, `cdc_copy_deferred`: one row per dropped index or
constraint, holding the statement that restores it. The rows are written in
the transaction that drops the objects, and each rebuild deletes its row in
its own transaction: after a kill -9 at any point a row exists exactly when
its object is missing, so a restarted copy continues into the bare table and
builds what is left when the copy is complete. The daemon publishes nothing
before that: the sink's upserts need the key.

Step 1 builds indexes (a key's or unique constraint's index too), several
at once: CREATE INDEX takes a SHARE lock, which another CREATE INDEX on the
same table does not wait for. Step 2 then turns those indexes back into
their constraints (`ADD CONSTRAINT ... USING INDEX`: no scan, the key
columns are already NOT NULL), one at a time, as each takes an ACCESS
EXCLUSIVE lock.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import psycopg
import structlog
from psycopg import sql

from cdc.parallel import parallel

log = structlog.get_logger(__name__)

DDL = """
CREATE TABLE IF NOT EXISTS public.cdc_copy_deferred (
    pipeline text NOT NULL,
    table_name text NOT NULL,
    step smallint NOT NULL,
    name text NOT NULL,
    statement text NOT NULL,
    PRIMARY KEY (pipeline, table_name, step, name)
)
"""
BUILD_INDEX, ADD_CONSTRAINT = 1, 2
# The table's indexes with the key or unique constraint each one backs, when
# it is one this module can drop and restore.
_INDEXES = """
SELECT c.relname, pg_get_indexdef(i.indexrelid), con.conname, con.contype, con.condeferrable
FROM pg_index i
JOIN pg_class c ON c.oid = i.indexrelid
LEFT JOIN pg_constraint con
    ON con.conindid = i.indexrelid AND con.conrelid = i.indrelid AND con.contype <> 'f'
WHERE i.indrelid = %s::regclass
"""
_REFERENCED = (
    "SELECT EXISTS (SELECT 1 FROM pg_constraint WHERE contype = 'f' AND confrelid = %s::regclass)"
)


# An index build sorts its keys in memory up to maintenance_work_mem, then on
# disk: the default 64MB (shared by the build's parallel workers) spilled a
# million-row bigint key to disk. Raised for the build's transaction only, as
# pgcopydb does on its target sessions; a higher setting is kept.
_SORT_MEMORY = (
    "SELECT set_config('maintenance_work_mem', '1GB', true) FROM pg_settings"
    " WHERE name = 'maintenance_work_mem' AND setting::bigint < 1048576"
)


@dataclass(frozen=True, slots=True)
class Deferred:
    table: str  # source schema.table, as in cdc_copy_progress
    step: int
    name: str
    statement: str


Restore = tuple[int, str, str]  # step, name, statement


def _deferrals(
    target: sql.Identifier, schema: str, rows: list[tuple[Any, ...]]
) -> Iterator[tuple[sql.Composed, list[Restore]]]:
    """Per index or constraint this module can defer: the statement that
    drops it and the steps that restore it."""
    for index, definition, constraint, kind, deferrable in rows:
        if constraint is None:
            drop = sql.SQL("DROP INDEX {}").format(sql.Identifier(schema, index))
            yield drop, [(BUILD_INDEX, index, definition)]
        elif kind in ("p", "u") and not deferrable:
            drop = sql.SQL("ALTER TABLE {} DROP CONSTRAINT {}").format(
                target, sql.Identifier(constraint)
            )
            add = (
                sql.SQL("ALTER TABLE {} ADD CONSTRAINT {} {} USING INDEX {}")
                .format(
                    target,
                    sql.Identifier(constraint),
                    sql.SQL("PRIMARY KEY" if kind == "p" else "UNIQUE"),
                    sql.Identifier(index),
                )
                .as_string(None)
            )
            yield drop, [(BUILD_INDEX, index, definition), (ADD_CONSTRAINT, constraint, add)]


def drop(conn: psycopg.Connection[Any], pipeline: str, table: str, schema: str, name: str) -> int:
    """Drops the indexes and constraints of the empty target table `schema.name`
    (the copy of source `table`), recording how to restore them; the number dropped."""
    target = sql.Identifier(schema, name)
    qualified = target.as_string(None)
    with conn.transaction():
        conn.execute(DDL)
        # no session writes the table between the emptiness check and the drop
        conn.execute(sql.SQL("LOCK TABLE {} IN ACCESS EXCLUSIVE MODE").format(target))
        empty = conn.execute(
            sql.SQL("SELECT NOT EXISTS (SELECT 1 FROM {})").format(target)
        ).fetchone()
        referenced = conn.execute(_REFERENCED, (qualified,)).fetchone()
        if not (empty and empty[0]) or (referenced and referenced[0]):
            return 0
        found = list(_deferrals(target, schema, conn.execute(_INDEXES, (qualified,)).fetchall()))
        for statement, restore in found:
            with conn.cursor() as cur:
                cur.executemany(
                    "INSERT INTO public.cdc_copy_deferred"
                    " (pipeline, table_name, step, name, statement) VALUES (%s, %s, %s, %s, %s)",
                    [(pipeline, table, *row) for row in restore],
                )
            conn.execute(statement)
    log.info("direct_copy_keys_deferred", table=table, dropped=len(found))
    return len(found)


def pending(conn: psycopg.Connection[Any], pipeline: str) -> list[Deferred]:
    """What is still to build, in order."""
    with conn.transaction():
        conn.execute(DDL)
        rows = conn.execute(
            "SELECT table_name, step, name, statement FROM public.cdc_copy_deferred"
            " WHERE pipeline = %s ORDER BY step, table_name, name",
            (pipeline,),
        ).fetchall()
    return [Deferred(*row) for row in rows]


def build(
    connect: Callable[[], psycopg.Connection[Any]],
    pipeline: str,
    todo: list[Deferred],
    workers: int,
) -> None:
    """Builds `todo` (from `pending`): step 1 on `workers` connections, then step 2."""

    def run(item: Deferred) -> Iterator[None]:
        started = time.perf_counter()
        with connect() as conn, conn.transaction():
            conn.execute(_SORT_MEMORY)
            conn.execute(item.statement.encode())
            conn.execute(
                "DELETE FROM public.cdc_copy_deferred"
                " WHERE pipeline = %s AND table_name = %s AND step = %s AND name = %s",
                (pipeline, item.table, item.step, item.name),
            )
        log.info(
            "direct_copy_key_built",
            table=item.table,
            name=item.name,
            seconds=round(time.perf_counter() - started, 3),
        )
        yield None

    for _ in parallel([d for d in todo if d.step == BUILD_INDEX], run, workers):
        pass
    for item in todo:
        if item.step == ADD_CONSTRAINT:
            for _ in run(item):
                pass
