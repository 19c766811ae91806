"""MySQL/MariaDB's part in `cdc verify` (`cdc.engine.verify.VerifySql`): a
table's columns by family, and the SQL that writes a row's canonical text."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pymysql
import pymysql.cursors

from cdc.engine.session import Session
from cdc.engine.verify import ColumnInfo, TableInfo
from cdc.mysql.catalog import load_table
from cdc.mysql.dialect import qualified, quote
from cdc.mysql.sessions import MysqlSession, connect_plain
from cdc.secrets import MysqlDsn

# information_schema DATA_TYPE -> family (`cdc.engine.verify`); text types with a
# binary character set are bytes
_FAMILIES = {
    "tinyint": "int", "smallint": "int", "mediumint": "int", "int": "int", "bigint": "int",
    "year": "year", "decimal": "decimal", "float": "float4", "double": "float8",
    "bit": "bit", "date": "date", "time": "time", "datetime": "timestamp",
    "timestamp": "timestamptz", "char": "char", "varchar": "text", "tinytext": "text",
    "text": "text", "mediumtext": "text", "longtext": "text", "enum": "enum", "set": "set",
    "json": "json", "uuid": "uuid", "binary": "bytes", "varbinary": "bytes",
    "tinyblob": "bytes", "blob": "bytes", "mediumblob": "bytes", "longblob": "bytes",
    "geometry": "bytes", "point": "bytes", "linestring": "bytes", "polygon": "bytes",
    "multipoint": "bytes", "multilinestring": "bytes", "multipolygon": "bytes",
    "geometrycollection": "bytes",
}  # fmt: skip
_TEXTS = {"char", "text"}
# doubled: every query is sent with parameters, so % is the drivers' placeholder mark
_STAMP = "'%%Y-%%m-%%dT%%H:%%i:%%s.%%f'"


def text(column: ColumnInfo, ident: str) -> str:
    """The column's canonical text (`cdc.engine.verify`) in its form."""
    form, family = column.form or column.family, column.family
    if form == "number" and family == "decimal":
        value = f"CAST({ident} AS CHAR)"
        # 1.50 -> 1.5 and 2.00 -> 2, as trim_scale does; integers keep their zeros
        trimmed = f"TRIM(TRAILING '.' FROM TRIM(TRAILING '0' FROM {value}))"
        return f"IF(INSTR({value}, '.') > 0, {trimmed}, {value})"
    if form in {"number", "bit"} and family in {"year", "bit"}:
        return f"CAST({ident} + 0 AS CHAR)"  # YEAR 0 as 0, not 0000; BIT as its number
    if form == "bytes":
        return f"LOWER(HEX({ident}))"
    if form == "timestamp":
        return f"DATE_FORMAT({ident}, {_STAMP})"
    if form == "date":
        return f"DATE_FORMAT({ident}, '%%Y-%%m-%%d')"
    if form == "text":
        return f"CONVERT({ident} USING utf8mb4)"
    if form == "char":
        return f"TRIM(TRAILING ' ' FROM CONVERT({ident} USING utf8mb4))"
    if form == "uuid":
        return f"REPLACE(LOWER(CONVERT({ident} USING utf8mb4)), '-', '')"
    if family == "float4":
        # a FLOAT prints 6 digits (1.23457 for 1.2345678): its exact double does not
        return f"CAST(CAST({ident} AS DOUBLE) AS CHAR)"
    if family == "time":
        return f"TIME_FORMAT({ident}, '%%H:%%i:%%s.%%f')"  # one number of digits
    return f"CAST({ident} AS CHAR)"


def select(column: ColumnInfo, ident: str) -> str:
    """The column as read for hashing in Python (`cdc.engine.verify.VerifySql.select`)."""
    if column.family == "float4":
        return f"CAST({ident} AS DOUBLE)"
    return f"{ident} + 0" if column.family == "bit" else ident


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
            cur.execute(
                "SELECT COLUMN_NAME, DATA_TYPE FROM information_schema.COLUMNS"
                " WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s",
                (schema, table),
            )
            types = {r["COLUMN_NAME"]: r["DATA_TYPE"].lower() for r in cur.fetchall()}
        columns = []
        for spec in found.columns:
            data_type = types[spec.name]
            family = _FAMILIES.get(data_type, "other")
            if spec.json:  # MariaDB's JSON is LONGTEXT with a json_valid check
                family = "json"
            elif family in _TEXTS and spec.encoding is None:
                family = "bytes"
            columns.append(ColumnInfo(spec.name, data_type, family))
        return TableInfo(tuple(columns), found.primary_key)

    def key(self, column: ColumnInfo) -> str:
        ident = quote(column.name)
        return f"BINARY {ident}" if column.family in {"text", "char", "enum"} else ident

    def row_hash(self, columns: Sequence[ColumnInfo]) -> str:
        idents = [quote(c.name) for c in columns]
        nulls = ", ".join(f"ISNULL({i})" for i in idents)
        texts = ", ".join(
            f"COALESCE({text(c, i)}, '')" for c, i in zip(columns, idents, strict=True)
        )
        value = f"CONCAT_WS('|', CONCAT({nulls}), {texts})"
        return f"CAST(CONV(SUBSTR(MD5({value}), 1, 15), 16, 10) AS UNSIGNED)"

    def select(self, column: ColumnInfo) -> str:
        return select(column, quote(column.name))
