"""A row's current values read from the source table, over the source's
ordinary (non-replication) connection: what a primary-key change lacks when
pgoutput sends a TOASTed column of the new row as unchanged ('u') and the old
tuple is the key only, with nothing for the sink to keep under the new key.

Reading now is correct: every later change of the row comes after in the
stream and either sets the column (applied after this value) or leaves it
unchanged (keeping it), so the target ends with the source's value. A rare
event, off the hot path: a few round trips each.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import psycopg
from psycopg import sql

from cdc.postgres.pgoutput_messages import UNCHANGED, TupleData
from cdc.postgres.types import Converter

# how long a transaction the stream has sent may stay invisible to a new
# snapshot (see `CurrentRows._wait_visible`)
VISIBLE_WITHIN_S = 10.0


@dataclass(frozen=True, slots=True)
class ColumnRef:
    """A column as the stream's Relation message has it: by number, which a
    rename since keeps, and by type, which a later ALTER TYPE may have changed."""

    attnum: int
    type_oid: int
    typmod: int


# each column's name now (NULL: dropped), whether its type is still the stream's, and that type
_COLUMNS = """
SELECT quote_ident(a.attname), a.atttypid = c.typ AND a.atttypmod = c.mod,
       format_type(c.typ, c.mod)
FROM unnest(%s::int2[], %s::oid[], %s::int4[]) WITH ORDINALITY AS c(num, typ, mod, i)
LEFT JOIN pg_attribute a ON a.attrelid = %s AND a.attnum = c.num AND NOT a.attisdropped
ORDER BY c.i
"""

_IN_FLIGHT = (
    "SELECT EXISTS (SELECT FROM pg_locks WHERE locktype = 'transactionid'"
    " AND transactionid = %s::text::xid)"
)


class RowReader(Protocol):
    def read(
        self,
        oid: int,
        key: Sequence[tuple[ColumnRef, str]],
        columns: Sequence[ColumnRef],
        xid: int,
    ) -> list[bytes | None] | None: ...


class CurrentRows:
    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        """`conn`: an autocommit session with the stream's `SESSION_OPTIONS`,
        so values come in the text form pgoutput sends them in."""
        self._conn = conn

    def read(
        self,
        oid: int,
        key: Sequence[tuple[ColumnRef, str]],
        columns: Sequence[ColumnRef],
        xid: int,
    ) -> list[bytes | None] | None:
        """The text of `columns` (None: NULL) of table `oid`'s row whose key
        columns hold the texts in `key`, once transaction `xid` is visible;
        None when no such row exists now. A column dropped since reads as NULL:
        the stream's next Relation message drops it on the target too."""
        conn = self._conn
        self._wait_visible(conn, xid)
        found = conn.execute("SELECT %s::oid::regclass::text FROM pg_class WHERE oid = %s",
                             (oid, oid)).fetchone()  # fmt: skip
        if found is None:
            return None  # dropped since: its DROP follows in the stream
        table = sql.SQL(found[0])  # regclass's text: quoted and qualified as needed
        try:
            return _select(conn, table, oid, key, columns, cast=True)
        except (psycopg.DataError, psycopg.ProgrammingError):
            # DDL between the column lookup and the read, or a value the
            # stream's type cannot hold after a type change: once more,
            # without casts (such a column reads as NULL)
            pass
        try:
            return _select(conn, table, oid, key, columns, cast=False)
        except psycopg.DataError:
            return None  # a key text that is no value of the key's type now: no row has it

    @staticmethod
    def _wait_visible(conn: psycopg.Connection[Any], xid: int) -> None:
        """Until transaction `xid` is visible to a new snapshot. The walsender
        sends a transaction once its commit record is flushed, a moment before
        the committing session lets other snapshots see it; its transaction
        lock goes after that. Bounded: a session that waits for this source's
        own confirmation (synchronous replication naming it) would never end."""
        if not xid:
            return
        deadline = time.monotonic() + VISIBLE_WITHIN_S
        while time.monotonic() < deadline:
            row = conn.execute(_IN_FLIGHT, (xid,)).fetchone()
            if row is None or not row[0]:
                return
            time.sleep(0.005)


def _select(
    conn: psycopg.Connection[Any],
    table: sql.Composable,
    oid: int,
    key: Sequence[tuple[ColumnRef, str]],
    columns: Sequence[ColumnRef],
    cast: bool,
) -> list[bytes | None] | None:
    refs = [ref for ref, _ in key] + list(columns)
    names = conn.execute(
        _COLUMNS,
        ([r.attnum for r in refs], [r.type_oid for r in refs], [r.typmod for r in refs], oid),
    ).fetchall()
    key_names, column_names = names[: len(key)], names[len(key) :]
    if any(name is None for name, _, _ in key_names):
        return None  # a key column dropped since: no row has this key now
    query = sql.SQL("SELECT {} FROM {} WHERE {}").format(
        sql.SQL(", ").join(_text(name, same, type_name, cast)
                           for name, same, type_name in column_names),
        table,
        sql.SQL(" AND ").join(sql.SQL("{} = %s").format(sql.SQL(name))
                              for name, _, _ in key_names),
    )  # fmt: skip
    # the key as text, which the column's type reads back (psycopg sends a str untyped)
    row = conn.execute(query, [text for _, text in key]).fetchone()
    if row is None:
        return None
    return [None if value is None else value.encode() for value in row]


def _text(name: str | None, same: bool, type_name: str, cast: bool) -> sql.Composable:
    """A column's value in its type's output form, as pgoutput sends it
    (`format`'s %s is the output function; `::text` is not, for bool, inet,
    ...), NULL as NULL (`num_nulls`, not IS NULL, which a composite of NULLs
    passes)."""
    if name is None:
        return sql.SQL("NULL")  # dropped since
    value: sql.Composable = sql.SQL(name)
    if not same:
        # ALTER TYPE since: the stream still has the old type, whose form the
        # sink expects until the Relation message of the change; on the second
        # try NULL, a value the old type cannot hold
        if not cast:
            return sql.SQL("NULL")
        value = sql.SQL("({}::{})").format(value, sql.SQL(type_name))
    return sql.SQL("CASE WHEN num_nulls({0}) = 0 THEN format('%%s', {0}) END").format(value)


@dataclass(frozen=True, slots=True)
class MovedRows:
    """What completes a relation's rows moved to a new key: its columns as
    the Relation message has them, and the reader of the table."""

    reader: RowReader
    oid: int
    names: tuple[str, ...]
    converters: tuple[Converter, ...]
    refs: tuple[ColumnRef | None, ...]  # None: a column without a number in the catalog
    key: tuple[str, ...]
    not_null: frozenset[str]

    def fill(
        self,
        new: TupleData,
        old: TupleData,
        row: dict[str, Any],
        unchanged: tuple[str, ...],
        xid: int,
    ) -> bool:
        """Put the current values of `unchanged` into `row`, the new row of a
        key change by transaction `xid` whose new and old (key) tuples are
        `new` and `old`. False: the row is gone from its new key and a column
        of them is NOT NULL, so its insert is to be left out."""
        index = {name: i for i, name in enumerate(self.names)}
        key = []
        for name in self.key:
            i = index[name]
            text = new[i] if new[i] is not UNCHANGED else old[i]
            ref = self.refs[i]
            if ref is None or not isinstance(text, bytes):
                return self._gone(row, unchanged)
            key.append((ref, text.decode()))
        wanted = [(name, self.refs[index[name]]) for name in unchanged]
        readable = [(name, ref) for name, ref in wanted if ref is not None]
        values = self.reader.read(self.oid, key, [ref for _, ref in readable], xid)
        if values is None:
            return self._gone(row, unchanged)
        # a column without a number (renamed twice since the Relation message) reads as NULL
        row.update((name, None) for name, ref in wanted if ref is None)
        for (name, _), value in zip(readable, values, strict=True):
            row[name] = None if value is None else self.converters[index[name]](value)
        return True

    def _gone(self, row: dict[str, Any], unchanged: tuple[str, ...]) -> bool:
        """The row left its new key before it was read: deleted, or moved
        again. That delete or move follows in the stream and takes the row off
        this key on the target again, so until then NULL stands in for the
        values. A NOT NULL column cannot hold it: then no row at all (the
        target refuses the insert anyway), which the delete or move that
        follows also expects."""
        if any(name in self.not_null for name in unchanged):
            return False
        row.update((name, None) for name in unchanged)
        return True
