"""One table on one database, as `verify.chunks.Side`: counts, checksums and row hashes of
key ranges, computed in the database when `hash_in_sql` (`cdc.engine.verify`), otherwise
from the rows read (`VerifySql.select`), put in their pair's form (`verify.forms`) and
hashed with `cdc.migrate.verify.canonical.row_hash`.

Both drivers take `%s` parameters, so one class serves every engine; the engine writes what
differs (identifiers, the byte-wise key order, the row hash). Text key columns are compared
and ordered byte-wise: UTF-8 bytes sort alike everywhere, so a key range holds the same rows
on both engines whatever their collations.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

from cdc.engine import Engine
from cdc.engine.session import Session
from cdc.engine.verify import ColumnInfo
from cdc.migrate.verify.canonical import row_hash
from cdc.migrate.verify.chunks import Key, KeyRange, RowHashes, Summary, canonical_key
from cdc.migrate.verify.forms import FORMS, in_form

KEYS_PER_QUERY = 500
_TEXT_KEYS = {"char", "uuid"}


class TableSide:
    """`columns` are this side's compared columns with their pair's form
    (`cdc.engine.verify.paired`), in the same order on both sides; the key columns come
    first among them."""

    def __init__(
        self,
        session: Session,
        engine: Engine,
        schema: str,
        table: str,
        key: Sequence[ColumnInfo],
        columns: Sequence[ColumnInfo],
        hash_in_sql: bool,
    ) -> None:
        self._session = session
        quote, sql = engine.quote, engine.verify
        self._table = f"{quote(schema)}.{quote(table)}"
        self._width = len(key)
        # a CHAR key as its unpadded text, a uuid as text: as both engines give it
        self._key_select = ", ".join(
            sql.select(c) if c.form in _TEXT_KEYS else quote(c.name) for c in key
        )
        self._key_exprs = [sql.key(c) for c in key]
        self._order = ", ".join(self._key_exprs)
        self._tuple = f"({', '.join(self._key_exprs)})"
        self._hash = sql.row_hash(columns) if hash_in_sql else None
        self._columns = ", ".join(sql.select(c) for c in columns)
        self._forms = [(i, c.form) for i, c in enumerate(columns) if c.form in FORMS]

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
        if self._hash is None and not self._width:  # no key (`verify.multiset`): the table
            counts = self.hash_counts()
            return Summary(counts.total(), sum(h * n for h, n in counts.items()))
        if self._hash is None:
            hashes = self.row_hashes(keys)
            return Summary(len(hashes), sum(h for _, h in hashes.values()))
        where, params = self._where(keys)
        rows = self._session.rows(
            f"SELECT COUNT(*), COALESCE(SUM({self._hash}), 0) FROM {self._table} WHERE {where}",
            params,
        )
        return Summary(int(rows[0][0]), int(rows[0][1]))

    def key_at(self, keys: KeyRange, offset: int) -> Key | None:
        where, params = self._where(keys)
        rows = self._session.rows(
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
            rows = self._session.rows(
                f"SELECT {self._key_select}, {self._hash} FROM {self._table} WHERE {where}", params
            )
            return {canonical_key(r[:-1]): (tuple(r[:-1]), int(r[-1])) for r in rows}
        rows = self._session.rows(
            f"SELECT {self._key_select}, {self._columns} FROM {self._table} WHERE {where}", params
        )
        found: RowHashes = {}
        for row in rows:
            key = tuple(row[: self._width])
            found[canonical_key(key)] = (key, self._row_hash(row[self._width :]))
        return found

    def hash_counts(self) -> Counter[int]:
        """The whole table as a multiset: each row hash, with how many rows have it."""
        if self._hash is not None:
            rows = self._session.rows(f"SELECT {self._hash} FROM {self._table}", [])
            return Counter(int(row[0]) for row in rows)
        rows = self._session.rows(f"SELECT {self._columns} FROM {self._table}", [])
        return Counter(self._row_hash(row) for row in rows)

    def _row_hash(self, row: Sequence[Any]) -> int:
        values = list(row)
        for index, form in self._forms:
            if values[index] is not None:
                values[index] = in_form(form, values[index])
        return row_hash(values)
