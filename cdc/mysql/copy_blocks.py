"""Reads a range of a MariaDB table with a single integer key as blocks of
COPY lines (`cdc.mysql.copy_lines`), for the direct copy.

MariaDB joins the lines of up to `group_rows` consecutive keys into one
result row (GROUP_CONCAT over `key DIV group_rows`), so Python handles a
result row per block instead of per table row: measured on the bench table,
0.2 instead of 2.9 µs of Python per row, for 0.5 µs more on the server.
The block size keeps a block well under the server's `max_allowed_packet`,
which bounds a result row; a block cut short anyway (a group of rows far
wider than the table's average) is a warning from the server, and that
chunk is read again a line per row.

Each chunk is bounded first (the key `chunk_rows` rows further, an index
scan), so the grouped query reads one closed key range; all chunks of a
range are read in one consistent snapshot, started after the coordinator's
(`cdc.mysql.snapshot`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pymysql
import pymysql.cursors

from cdc.errors import TerminalError
from cdc.mysql.catalog import MyTable
from cdc.mysql.dialect import qualified, quote

MAX_GROUP_ROWS = 1000
# bytes of COPY line a stored byte may become (hex doubles bytes; quotes, escapes)
_WIDENING = 4


def group_rows(cursor: Any, table: MyTable) -> int:
    """Rows per block: up to MAX_GROUP_ROWS, fewer for wide rows."""
    cursor.execute(
        "SELECT @@max_allowed_packet, AVG_ROW_LENGTH FROM information_schema.TABLES"
        " WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s",
        (table.schema, table.name),
    )
    found = cursor.fetchone()
    packet, width = (int(found[0]), int(found[1] or 0)) if found else (1 << 24, 0)
    # a quarter of a packet per block, so rows four times wider than the average still fit
    return max(1, min(MAX_GROUP_ROWS, packet // (4 * _WIDENING * max(width, 1))))


def read_blocks(
    connect: Callable[[], pymysql.Connection[Any]],
    table: MyTable,
    line: str,
    bounds: tuple[int | None, int | None],
    after: int | None,
    chunk_rows: int,
) -> Iterator[tuple[list[str], int | None, bool]]:
    """(blocks of lines, last key, done) per chunk of the key range
    `bounds` (inclusive lower, exclusive upper; None: open) after `after`."""
    key = quote(table.primary_key[0])
    source = qualified(table.schema, table.name)
    lower, upper = bounds
    in_range = [f"{key} >= {int(lower)}"] if lower is not None else []
    in_range += [f"{key} < {int(upper)}"] if upper is not None else []
    with connect() as conn, conn.cursor(pymysql.cursors.Cursor) as cursor:
        group = group_rows(cursor, table)
        cursor.execute("SET SESSION group_concat_max_len = @@max_allowed_packet")
        cursor.execute("START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY")
        while True:
            start = [*in_range, f"{key} > {int(after)}"] if after is not None else in_range
            where = f" WHERE {' AND '.join(start)}" if start else ""
            cursor.execute(
                f"SELECT {key} FROM {source}{where} ORDER BY {key}"
                f" LIMIT 1 OFFSET {int(chunk_rows) - 1}"
            )
            found = cursor.fetchone()
            bound = None if found is None else int(found[0])
            chunk = [*start, f"{key} <= {bound}"] if bound is not None else start
            where = f" WHERE {' AND '.join(chunk)}" if chunk else ""
            # `line` has its `%` doubled: formatting with no parameters undoes that
            cursor.execute(
                f"SELECT GROUP_CONCAT({line} SEPARATOR '\\n') FROM {source}{where}"
                f" GROUP BY {key} DIV {group}",
                (),
            )
            blocks = [row[0] for row in cursor.fetchall()]
            if cursor.warning_count:
                # a block cut short (wider than a packet) or a line dropped from
                # it (a row wider than a packet is NULL): this chunk a line per
                # row, which tells the two apart
                cursor.execute(f"SELECT {line} FROM {source}{where}", ())
                blocks = [row[0] for row in cursor.fetchall()]
                if None in blocks:
                    raise TerminalError(
                        f"copying {table.qualified} after key {after}: a row's COPY line is"
                        " longer than the source server's max_allowed_packet",
                        "raise max_allowed_packet on the source server (SET GLOBAL"
                        " max_allowed_packet = 1073741824); the copy resumes at this chunk",
                    )
            yield blocks, bound, bound is None
            if bound is None:
                return
            after = bound
