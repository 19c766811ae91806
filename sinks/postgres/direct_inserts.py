"""New rows COPYed straight into their PostgreSQL table: no existence query,
no staging table, no upsert.

Two callers: an insert batch in wire form (`sinks.inserts`, its `after` rows
encoded in native code, `copy_messages`) and a planned table batch of new
rows only (`copy_new_rows`). A key that exists already makes the COPY fail
with a unique violation, so success means no key existed and no conflict
was missed; on failure the rows take the planned path, where the table's
conflict policy decides.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import nullcontext
from typing import Any

import psycopg
from cdc_copytext import BINARY_HEADER, BINARY_TRAILER
from psycopg import sql

from cdc.applier import ApplyResult
from cdc.changes import KeyState, KeyValues
from cdc.events import Op
from sinks.postgres.copy_text import COPY_CHUNK_ROWS
from sinks.postgres.tables import TargetTable

# After a direct COPY met an existing key, a table's insert batches take the
# staged path this many times before trying again (a replay re-inserts rows
# that exist: every try would be wasted work).
DIRECT_COPY_BACKOFF = 100
_NEW_ROW_OPS = (Op.CREATE, Op.READ)


class NotDirectError(Exception):
    """An insert batch the direct path cannot take: roll it back."""


def copy_messages(conn: psycopg.Connection[Any], table: TargetTable, values: list[bytes]) -> int:
    """COPY the `after` rows of insert events in wire form; the newest
    source commit time among them. Raises NotDirectError when one is more
    than a new row or holds a value the native encoder leaves to the planned
    path, or when a key exists already: the caller's transaction is then
    failed and must roll back."""
    newest = 0
    binary = table.row_encoder.binary

    def write(copy: psycopg.Copy) -> None:
        nonlocal newest
        if binary:
            copy.write(BINARY_HEADER)
        for start in range(0, len(values), COPY_CHUNK_ROWS):
            encoded = table.row_encoder.encode(values[start : start + COPY_CHUNK_ROWS])
            if encoded is None:
                raise NotDirectError
            copy.write(encoded[0])
            newest = max(newest, encoded[1])
        if binary:
            copy.write(BINARY_TRAILER)

    if not _copy_rows(conn, table, write, savepoint=False, binary=binary):
        raise NotDirectError
    return newest


def copy_new_rows(
    conn: psycopg.Connection[Any],
    table: TargetTable,
    keys: list[tuple[KeyValues, KeyState]],
    result: ApplyResult,
) -> bool:
    """Insert-only table batches (a snapshot, an append-only table) COPY
    straight into the target. Under a savepoint: a key that exists after all
    raises a unique violation, which undoes just this COPY, and the batch
    takes the staged path. False, with nothing written, when a key's change
    is more than a whole new row or a key exists."""
    rows = [
        s.row for _, s in keys if s.complete and s.first_op in _NEW_ROW_OPS and s.row is not None
    ]
    if len(rows) < len(keys) or not copy_rows(conn, table, rows):
        return False
    result.rows[(table.qualified, "c")] += len(keys)
    result.last_ts_ms = max(result.last_ts_ms, *(s.ts_ms for _, s in keys))
    return True


def copy_rows(
    conn: psycopg.Connection[Any], table: TargetTable, rows: list[dict[str, Any]]
) -> bool:
    """COPY whole new rows into the table under a savepoint; False, with nothing
    written, when a key exists already."""

    def write(copy: psycopg.Copy) -> None:
        for text in table.lines.chunks(rows):
            copy.write(text)

    return _copy_rows(conn, table, write)


def _copy_rows(
    conn: psycopg.Connection[Any],
    table: TargetTable,
    write: Callable[[psycopg.Copy], None],
    *,
    savepoint: bool = True,
    binary: bool = False,
) -> bool:
    """COPY into the table what `write` writes; False when a key exists
    already (and the next insert batches of the table take the staged
    path for a while). Under a savepoint nothing is then written and the
    transaction goes on; without one (for a caller that then abandons the
    whole transaction: a savepoint per batch costs the server a
    subtransaction) the transaction is left failed."""
    if table.direct_copy_wait > 0:
        table.direct_copy_wait -= 1
        return False
    columns = sql.SQL(", ").join(sql.Identifier(c) for c in table.types)
    copy_sql = sql.SQL("COPY {} ({}) FROM STDIN{}").format(
        table.ident, columns, sql.SQL(" (FORMAT binary)" if binary else "")
    )
    try:
        with (
            conn.transaction() if savepoint else nullcontext(),
            conn.cursor() as cur,
            cur.copy(copy_sql) as copy,
        ):
            write(copy)
    except psycopg.errors.UniqueViolation:
        table.direct_copy_wait = DIRECT_COPY_BACKOFF
        return False
    return True
