"""The lock-free initial snapshot of the MySQL/MariaDB source.

MariaDB gives a consistent snapshot and its binlog position without a lock:
`START TRANSACTION WITH CONSISTENT SNAPSHOT` then the `binlog_snapshot_file`
and `binlog_snapshot_position` status variables. A coordinator takes one such
snapshot first; its position is where streaming starts. Tables are read in
parallel, each by a worker in a consistent snapshot of its own, taken after
the coordinator's, in keyset chunks of the primary key. Every change after
the coordinator's position is then streamed in order, so each row ends at its
latest state even though workers read slightly newer snapshots.

MySQL 8 has no such status variables: the coordinator holds
`FLUSH TABLES WITH READ LOCK` just long enough to start its snapshot and
read `SHOW MASTER STATUS` (the shortest lock that gives a consistent position).
"""

from __future__ import annotations

import base64
import struct
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime
from typing import Any

import orjson
import pymysql
import pymysql.converters
import pymysql.cursors
from pymysqlreplication.constants import FIELD_TYPE

from cdc import values
from cdc.mysql.catalog import MyTable
from cdc.mysql.column_types import ColumnSpec
from cdc.mysql.dialect import qualified, quote
from cdc.mysql.position import BinlogPosition
from cdc.mysql.setup import current_position, is_mariadb
from cdc.mysql.zero_dates import ZeroDates, ZeroPolicy

Converter = Callable[[Any], Any]
_FLOAT32 = struct.Struct("<f")


def snapshot_position(cursor: Any) -> BinlogPosition:
    """Start a consistent snapshot on `cursor`'s connection; its binlog position."""
    if is_mariadb(cursor):
        cursor.execute("START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY")
        cursor.execute("SHOW STATUS LIKE 'binlog_snapshot_%'")
        status = {row["Variable_name"].lower(): row["Value"] for row in cursor.fetchall()}
        file, pos = status["binlog_snapshot_file"], int(status["binlog_snapshot_position"])
        cursor.execute("SELECT BINLOG_GTID_POS(%s, %s) AS g", (file, pos))
        return BinlogPosition(file, pos, cursor.fetchone()["g"] or "")
    cursor.execute("FLUSH TABLES WITH READ LOCK")
    try:
        cursor.execute("START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY")
        return current_position(cursor)
    finally:
        cursor.execute("UNLOCK TABLES")


# Decoders of a connection that reads the Kafka snapshot: dates, datetimes,
# timestamps and decimals stay MariaDB's text, which `wire_converter` turns
# into their wire strings (cdc.values) straight, instead of pymysql parsing
# each into a Python object that the encoder then writes back out as text
# (a third of the snapshot's time).
TEXT_VALUES = {
    **pymysql.converters.conversions,
    **dict.fromkeys(
        (
            FIELD_TYPE.DATE,
            FIELD_TYPE.DATETIME,
            FIELD_TYPE.TIMESTAMP,
            FIELD_TYPE.DECIMAL,
            FIELD_TYPE.NEWDECIMAL,
        ),
        pymysql.converters.through,
    ),
}


def wire_converter(spec: ColumnSpec, zero_dates: ZeroDates, table: str) -> Converter | None:
    """`converter` for a connection with the `TEXT_VALUES` decoders: the
    value `values.dumps` writes the same JSON for as for `converter`'s."""
    t = spec.type
    zero = ZeroPolicy(zero_dates, table, spec.name)
    if t == FIELD_TYPE.DATE:
        return _valid_or_zero(date.fromisoformat, date.isoformat, zero)
    if t in (FIELD_TYPE.DATETIME2, FIELD_TYPE.DATETIME):
        return _valid_or_zero(datetime.fromisoformat, _micros, zero)
    if t in (FIELD_TYPE.TIMESTAMP2, FIELD_TYPE.TIMESTAMP):
        # the session runs in UTC, so the naive value is UTC
        return _valid_or_zero(datetime.fromisoformat, _micros_utc, zero)
    if t in (FIELD_TYPE.DECIMAL, FIELD_TYPE.NEWDECIMAL):
        return None  # MariaDB writes the plain notation `values.encode_decimal` does
    return converter(spec, zero_dates, table)


def _micros(value: datetime) -> str:
    return value.isoformat(timespec="microseconds")


def _micros_utc(value: datetime) -> str:
    return value.isoformat(timespec="microseconds") + "Z"


def _valid_or_zero(
    parse: Callable[[str], Any], write: Callable[[Any], str], zero: ZeroPolicy
) -> Converter:
    """Text of a date or time MariaDB sent to its wire form; one Python
    cannot represent (a zero date) as `_zero_date` has it."""
    as_zero = _zero_date(zero)

    def convert(text: str) -> Any:
        try:
            return write(parse(text))
        except ValueError:
            return as_zero(text)

    return convert


def _zero_date(zero: ZeroPolicy) -> Converter:
    def convert(value: Any) -> Any:
        if isinstance(value, str):  # pymysql leaves dates it cannot represent as text
            zero.met("date", value)  # raises under zero_dates: error
            return None
        return value

    return convert


def _timestamp(zero: Converter) -> Converter:
    def convert(value: Any) -> Any:
        value = zero(value)
        # the session runs in UTC, so the naive value is UTC
        return value.replace(tzinfo=UTC) if isinstance(value, datetime) else value

    return convert


def _selected(spec: ColumnSpec) -> str:
    """A column in the snapshot's select list. The text protocol prints a FLOAT with six
    significant digits, which two neighbouring float32 values can share (1.2345678 reads
    as 1.23457): as a DOUBLE it is exact, the value the binlog carries."""
    name = quote(spec.name)
    return f"CAST({name} AS DOUBLE)" if spec.type == FIELD_TYPE.FLOAT else name


def _float32(value: Any) -> Any:
    # the snapshot's exact double of the stored float32, as the binlog decoder gives it
    return None if value is None else _FLOAT32.unpack(_FLOAT32.pack(value))[0]


def converter(spec: ColumnSpec, zero_dates: ZeroDates, table: str) -> Converter | None:
    """How a pymysql value of `table` (database.table) becomes the value the
    binlog decoder gives, or None (as is)."""
    t = spec.type
    zero = ZeroPolicy(zero_dates, table, spec.name)
    if t in (FIELD_TYPE.DATE, FIELD_TYPE.DATETIME2, FIELD_TYPE.DATETIME):
        return _zero_date(zero)
    if t in (FIELD_TYPE.TIMESTAMP2, FIELD_TYPE.TIMESTAMP):
        return _timestamp(_zero_date(zero))
    if t == FIELD_TYPE.FLOAT:
        return _float32
    if spec.json:
        return lambda v: orjson.loads(v) if isinstance(v, str | bytes) else v
    if t == FIELD_TYPE.SET:
        return lambda v: set(v) if isinstance(v, set) else set(v.split(",")) if v else set()
    if spec.encoding is None and t in (FIELD_TYPE.VARCHAR, FIELD_TYPE.STRING, FIELD_TYPE.BLOB):
        return lambda v: v if isinstance(v, bytes) else str(v).encode()
    return None


_BYTES_TYPES = (
    FIELD_TYPE.VARCHAR,
    FIELD_TYPE.STRING,
    FIELD_TYPE.BLOB,
    FIELD_TYPE.BIT,
    FIELD_TYPE.GEOMETRY,
)
_DATETIME_TYPES = (
    FIELD_TYPE.DATETIME,
    FIELD_TYPE.DATETIME2,
    FIELD_TYPE.TIMESTAMP,
    FIELD_TYPE.TIMESTAMP2,
)


def stored_key(last: tuple[Any, ...]) -> tuple[Any, ...]:
    """The last key read, JSON values for the offsets store (the wire form, cdc.values)."""
    return tuple(orjson.loads(values.dumps(list(last))))


def resume_key(table: MyTable, stored: list[Any]) -> tuple[Any, ...]:
    """`stored_key` back to query parameters. The wire form is not one a
    server compares right: a binary key travels as base64 text and a TIME as
    an ISO duration, and resuming after the text instead of the bytes would
    skip or repeat rows."""
    specs = {c.name: c for c in table.columns}
    return tuple(
        _param(specs[name], value) for name, value in zip(table.primary_key, stored, strict=True)
    )


def _param(spec: ColumnSpec, value: Any) -> Any:
    if isinstance(value, str):
        if spec.encoding is None and spec.type in _BYTES_TYPES:
            return base64.b64decode(value)
        if spec.type in (FIELD_TYPE.TIME, FIELD_TYPE.TIME2):
            return values.decode_timedelta(value)
        if spec.type in _DATETIME_TYPES:
            return datetime.fromisoformat(value)
    return value


def read_table(
    connect: Callable[[], pymysql.Connection[Any]],
    table: MyTable,
    after: tuple[Any, ...] | None,
    chunk_rows: int,
    select: str | None = None,
    piece_rows: int | None = None,
) -> Iterator[tuple[list[tuple[Any, ...]], tuple[Any, ...] | None, bool]]:
    """(rows, last key, done) per chunk, in a consistent snapshot of its own.
    With `select` (an SQL expression, `%` doubled as in every statement with
    parameters), rows are (its value, *key) instead of the table's columns.
    With `piece_rows`, a chunk comes in pieces of that many rows: all but its
    last as (rows, None, False), so a chunk is never held whole."""
    names = [c.name for c in table.columns]
    if select is None:
        columns = ", ".join(_selected(c) for c in table.columns)
        key_at = [names.index(k) for k in table.primary_key]
    else:
        columns = ", ".join([select, *(quote(k) for k in table.primary_key)])
        key_at = list(range(1, len(table.primary_key) + 1))
    source = qualified(table.schema, table.name)
    with connect() as conn, conn.cursor(pymysql.cursors.SSCursor) as cursor:
        cursor.execute("START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY")
        if not table.primary_key:
            cursor.execute(f"SELECT {columns} FROM {source}", ())
            while rows := cursor.fetchmany(chunk_rows):
                yield list(rows), None, False
            yield [], None, True
            return
        key = ", ".join(quote(k) for k in table.primary_key)
        while True:
            where = ""
            params: tuple[Any, ...] = ()
            if after is not None:
                where = f" WHERE ({key}) > ({', '.join(['%s'] * len(after))})"
                params = after
            cursor.execute(
                f"SELECT {columns} FROM {source}{where} ORDER BY {key} LIMIT {int(chunk_rows)}",
                params,
            )
            rows = []
            count = 0
            # each piece goes out once the next one came: the last carries the key
            while piece := cursor.fetchmany(piece_rows or chunk_rows):
                if rows:
                    yield rows, None, False
                rows = list(piece)
                count += len(rows)
            done = count < chunk_rows
            if rows:
                after = tuple(rows[-1][i] for i in key_at)
            yield rows, after, done
            if done:
                return


def estimate_rows(connect: Callable[[], pymysql.Connection[Any]], tables: list[MyTable]) -> int:
    """About how many rows `tables` hold (the server's statistics)."""
    with connect() as conn, conn.cursor() as cursor:
        total = 0
        for table in tables:
            cursor.execute(
                "SELECT TABLE_ROWS AS n FROM information_schema.TABLES"
                " WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s",
                (table.schema, table.name),
            )
            row = cursor.fetchone()
            total += int(row["n"] or 0) if row else 0
        return total
