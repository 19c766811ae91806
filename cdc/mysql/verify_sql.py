"""MySQL/MariaDB's part in `cdc verify` (`cdc.engine.verify.VerifySql`): a
table's columns by family, and the SQL that writes a row's canonical text."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

import pymysql
import pymysql.cursors
from pymysqlreplication.constants import FIELD_TYPE

from cdc.engine.session import Session
from cdc.engine.verify import ColumnInfo, TableInfo
from cdc.mysql.catalog import load_table
from cdc.mysql.dialect import qualified, quote
from cdc.mysql.sessions import MysqlSession, connect_plain
from cdc.secrets import MysqlDsn

_FAMILIES = {
    FIELD_TYPE.TINY: "int", FIELD_TYPE.SHORT: "int", FIELD_TYPE.INT24: "int",
    FIELD_TYPE.LONG: "int", FIELD_TYPE.LONGLONG: "int", FIELD_TYPE.YEAR: "int",
    FIELD_TYPE.NEWDECIMAL: "decimal", FIELD_TYPE.DATETIME2: "timestamp",
    FIELD_TYPE.TIMESTAMP2: "timestamptz", FIELD_TYPE.DATE: "date", FIELD_TYPE.ENUM: "text",
    FIELD_TYPE.FLOAT: "float", FIELD_TYPE.DOUBLE: "float", FIELD_TYPE.JSON: "json",
    FIELD_TYPE.SET: "set",
}  # fmt: skip
_STRINGS = {FIELD_TYPE.VARCHAR, FIELD_TYPE.STRING, FIELD_TYPE.BLOB}
# doubled: every query is sent with parameters, so % is the drivers' placeholder mark
_STAMP = "'%%Y-%%m-%%dT%%H:%%i:%%s.%%f'"


def text(column: ColumnInfo, ident: str) -> str:
    """The column's canonical text (`cdc.engine.verify`)."""
    family = column.family
    if family == "decimal":
        value = f"CAST({ident} AS CHAR)"
        # 1.50 -> 1.5 and 2.00 -> 2, as trim_scale does; integers keep their zeros
        trimmed = f"TRIM(TRAILING '.' FROM TRIM(TRAILING '0' FROM {value}))"
        return f"IF(INSTR({value}, '.') > 0, {trimmed}, {value})"
    if family == "bytes":
        return f"LOWER(HEX({ident}))"
    if family in {"timestamp", "timestamptz"}:
        return f"DATE_FORMAT({ident}, {_STAMP})"
    if family == "date":
        return f"DATE_FORMAT({ident}, '%%Y-%%m-%%d')"
    if family in {"text", "uuid"}:
        return f"CONVERT({ident} USING utf8mb4)"
    return f"CAST({ident} AS CHAR)"


def _set_members(value: str) -> list[str]:
    return sorted(value.split(",")) if value else []


# MySQL hands JSON and SET over as text; PostgreSQL gives the parsed value and, for
# a SET (text[] on a PostgreSQL target), the array
_DECODERS: dict[str, Callable[[Any], Any]] = {"json": json.loads, "set": _set_members}


def table_rows(
    connect_args: dict[str, Any], table: str, columns: Sequence[str]
) -> list[tuple[Any, ...]]:
    """Every row of `table` (database.table), for a whole-table `canonical.digest`."""
    database, name = table.split(".", 1)
    query = f"SELECT {', '.join(quote(c) for c in columns)} FROM {qualified(database, name)}"
    conn = pymysql.connect(**connect_args, charset="utf8mb4", init_command="SET time_zone='+00:00'")
    try:
        with conn.cursor(pymysql.cursors.Cursor) as cur:
            cur.execute(query)
            return list(cur.fetchall())
    finally:
        conn.close()


class MysqlVerify:
    def __init__(self, dsn: MysqlDsn) -> None:
        self._dsn = dsn

    def connect(self) -> Session:
        return MysqlSession(connect_plain(self._dsn))

    def describe(self, session: Session, schema: str, table: str) -> TableInfo | None:
        assert isinstance(session, MysqlSession), "a session of this engine"
        with session.conn.cursor(pymysql.cursors.DictCursor) as cur:
            cur.execute(
                "SELECT 1 FROM information_schema.TABLES"
                " WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s",
                (schema, table),
            )
            if cur.fetchone() is None:
                return None
            found = load_table(cur, schema, table)
        columns = []
        for spec in found.columns:
            if spec.json:
                family = "json"
            elif spec.type in _STRINGS:
                family = "bytes" if spec.encoding is None else "text"
            else:
                family = _FAMILIES.get(spec.type, "other")
            columns.append(ColumnInfo(spec.name, str(spec.type), family))
        return TableInfo(tuple(columns), found.primary_key)

    def key(self, column: ColumnInfo) -> str:
        ident = quote(column.name)
        return f"BINARY {ident}" if column.family == "text" else ident

    def row_hash(self, columns: Sequence[ColumnInfo]) -> str:
        idents = [quote(c.name) for c in columns]
        nulls = ", ".join(f"ISNULL({i})" for i in idents)
        texts = ", ".join(
            f"COALESCE({text(c, i)}, '')" for c, i in zip(columns, idents, strict=True)
        )
        value = f"CONCAT_WS('|', CONCAT({nulls}), {texts})"
        return f"CAST(CONV(SUBSTR(MD5({value}), 1, 15), 16, 10) AS UNSIGNED)"

    def decoder(self, column: ColumnInfo) -> Callable[[Any], Any] | None:
        return _DECODERS.get(column.family)
