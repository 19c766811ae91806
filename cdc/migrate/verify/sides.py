"""One table on one database, as `verify_chunks.Side`: counts, checksums and row hashes of
key ranges, computed in the database when `hash_in_sql` (see `verify_columns`), otherwise
from the rows read and hashed with `cdc.migrate.verify.canonical.row_hash`.

Both drivers take `%s` parameters, so one class serves both engines; `Dialect` holds what
differs. Text key columns are compared and ordered byte-wise (PostgreSQL `COLLATE "C"`,
MySQL `BINARY`): UTF-8 bytes sort alike everywhere, so a key range holds the same rows on
both engines whatever their collations.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeAlias

import psycopg
import pymysql

from cdc.migrate.verify.canonical import row_hash
from cdc.migrate.verify.chunks import Key, KeyRange, RowHashes, Summary, canonical_key
from cdc.migrate.verify.columns import ColumnInfo, mysql_text, pg_text
from cdc.settings import PostgresSource, PostgresTarget, Source, Target

# the same output for the same value on every PostgreSQL connection of a verify
PG_SESSION = (
    "-c TimeZone=UTC -c DateStyle=ISO -c IntervalStyle=postgres"
    " -c extra_float_digits=1 -c bytea_output=hex"
)
KEYS_PER_QUERY = 500
Connection: TypeAlias = "psycopg.Connection[Any] | pymysql.connections.Connection[Any]"


def connect(endpoint: Source | Target) -> Connection:
    """An autocommit session whose values print the same on every connection: UTC times,
    ISO dates, utf8mb4. Each statement then reads committed rows as of its own start."""
    if isinstance(endpoint, PostgresSource | PostgresTarget):
        return psycopg.connect(endpoint.dsn.get_secret_value(), autocommit=True, options=PG_SESSION)
    return pymysql.connect(
        **endpoint.dsn.connect_kwargs(),
        charset="utf8mb4",
        autocommit=True,
        init_command="SET time_zone = '+00:00'",
    )


@dataclass(frozen=True)
class Dialect:
    name: str  # postgres | mysql

    def ident(self, name: str) -> str:
        if self.name == "postgres":
            return '"' + name.replace('"', '""') + '"'
        return "`" + name.replace("`", "``") + "`"

    def key(self, column: ColumnInfo) -> str:
        ident = self.ident(column.name)
        if column.family != "text":
            return ident
        return f'{ident} COLLATE "C"' if self.name == "postgres" else f"BINARY {ident}"

    def row_hash(self, columns: Sequence[ColumnInfo]) -> str:
        """A 60-bit integer from the MD5 of the row's canonical text: a null bitmap (so NULL
        and '' differ), then each column's text, separated by |."""
        idents = [self.ident(c.name) for c in columns]
        if self.name == "postgres":
            nulls = " || ".join(f"(CASE WHEN {i} IS NULL THEN '1' ELSE '0' END)" for i in idents)
            texts = " || '|' || ".join(
                f"coalesce({pg_text(c, i)}, '')" for c, i in zip(columns, idents, strict=True)
            )
            return f"('x' || substr(md5({nulls} || '|' || {texts}), 1, 15))::bit(60)::bigint"
        nulls = ", ".join(f"ISNULL({i})" for i in idents)
        texts = ", ".join(
            f"COALESCE({mysql_text(c, i)}, '')" for c, i in zip(columns, idents, strict=True)
        )
        text = f"CONCAT_WS('|', CONCAT({nulls}), {texts})"
        return f"CAST(CONV(SUBSTR(MD5({text}), 1, 15), 16, 10) AS UNSIGNED)"


class TableSide:
    """`columns` are this side's names for the compared columns, in the same order on both
    sides; the key columns come first among them."""

    def __init__(
        self,
        conn: Connection,
        dialect: Dialect,
        schema: str,
        table: str,
        key: Sequence[ColumnInfo],
        columns: Sequence[ColumnInfo],
        hash_in_sql: bool,
    ) -> None:
        self._conn = conn
        self._table = f"{dialect.ident(schema)}.{dialect.ident(table)}"
        self._width = len(key)
        self._key_select = ", ".join(dialect.ident(c.name) for c in key)
        self._key_exprs = [dialect.key(c) for c in key]
        self._order = ", ".join(self._key_exprs)
        self._tuple = f"({', '.join(self._key_exprs)})"
        self._hash = dialect.row_hash(columns) if hash_in_sql else None
        self._columns = ", ".join(dialect.ident(c.name) for c in columns)
        # MySQL hands JSON and SET over as text; PostgreSQL gives the parsed value and, for a
        # SET (text[] on a PostgreSQL target), the array
        decoders: dict[str, Callable[[Any], Any]] = (
            {"json": json.loads, "set": _set_members} if dialect.name == "mysql" else {}
        )
        self._decode = [
            (i, decoders[c.family]) for i, c in enumerate(columns) if c.family in decoders
        ]

    def _query(self, query: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        if isinstance(self._conn, psycopg.Connection):
            # bytes: the query is built from quoted identifiers, not from a literal
            return self._conn.execute(query.encode(), tuple(params)).fetchall()
        with self._conn.cursor() as cur:
            cur.execute(query, tuple(params))
            return list(cur.fetchall())

    def _where(self, keys: KeyRange) -> tuple[str, list[Any]]:
        marks = f"({', '.join(['%s'] * self._width)})"
        parts, params = ["TRUE"], list[Any]()
        if keys.lo is not None:
            parts.append(f"{self._tuple} > {marks}")
            params += keys.lo
        if keys.hi is not None:
            parts.append(f"{self._tuple} <= {marks}")
            params += keys.hi
        return " AND ".join(parts), params

    def summary(self, keys: KeyRange) -> Summary:
        if self._hash is None:
            hashes = self.row_hashes(keys)
            return Summary(len(hashes), sum(h for _, h in hashes.values()))
        where, params = self._where(keys)
        rows = self._query(
            f"SELECT COUNT(*), COALESCE(SUM({self._hash}), 0) FROM {self._table} WHERE {where}",
            params,
        )
        return Summary(int(rows[0][0]), int(rows[0][1]))

    def key_at(self, keys: KeyRange, offset: int) -> Key | None:
        where, params = self._where(keys)
        rows = self._query(
            f"SELECT {self._key_select} FROM {self._table} WHERE {where}"
            f" ORDER BY {self._order} LIMIT 1 OFFSET {int(offset)}",
            params,
        )
        return tuple(rows[0]) if rows else None

    def row_hashes(self, keys: KeyRange) -> RowHashes:
        where, params = self._where(keys)
        return self._hashes(where, params)

    def row_hashes_for(self, keys: Sequence[Key]) -> RowHashes:
        found: RowHashes = {}
        marks = f"({', '.join(['%s'] * self._width)})"
        for start in range(0, len(keys), KEYS_PER_QUERY):
            batch = keys[start : start + KEYS_PER_QUERY]
            where = f"{self._tuple} IN ({', '.join([marks] * len(batch))})"
            found.update(self._hashes(where, [v for key in batch for v in key]))
        return found

    def _hashes(self, where: str, params: Sequence[Any]) -> RowHashes:
        if self._hash is not None:
            rows = self._query(
                f"SELECT {self._key_select}, {self._hash} FROM {self._table} WHERE {where}", params
            )
            return {canonical_key(r[:-1]): (tuple(r[:-1]), int(r[-1])) for r in rows}
        rows = self._query(
            f"SELECT {self._key_select}, {self._columns} FROM {self._table} WHERE {where}", params
        )
        found: RowHashes = {}
        for row in rows:
            key, values = tuple(row[: self._width]), list(row[self._width :])
            for index, decode in self._decode:
                if values[index] is not None:
                    values[index] = decode(values[index])
            found[canonical_key(key)] = (key, row_hash(values))
        return found


def _set_members(text: str) -> list[str]:
    return sorted(text.split(",")) if text else []
