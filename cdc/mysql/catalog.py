"""Tables of the MySQL source as information_schema describes them."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pymysqlreplication.constants import FIELD_TYPE

from cdc.mysql.column_types import ColumnSpec, charset_name

_TYPES = {
    "tinyint": FIELD_TYPE.TINY,
    "smallint": FIELD_TYPE.SHORT,
    "mediumint": FIELD_TYPE.INT24,
    "int": FIELD_TYPE.LONG,
    "bigint": FIELD_TYPE.LONGLONG,
    "decimal": FIELD_TYPE.NEWDECIMAL,
    "float": FIELD_TYPE.FLOAT,
    "double": FIELD_TYPE.DOUBLE,
    "bit": FIELD_TYPE.BIT,
    "year": FIELD_TYPE.YEAR,
    "date": FIELD_TYPE.DATE,
    "time": FIELD_TYPE.TIME2,
    "datetime": FIELD_TYPE.DATETIME2,
    "timestamp": FIELD_TYPE.TIMESTAMP2,
    "varchar": FIELD_TYPE.VARCHAR,
    "varbinary": FIELD_TYPE.VARCHAR,
    "char": FIELD_TYPE.STRING,
    "binary": FIELD_TYPE.STRING,
    "enum": FIELD_TYPE.ENUM,
    "set": FIELD_TYPE.SET,
    "json": FIELD_TYPE.JSON,
}
_BLOB_SIZES = {"tiny": 1, "": 2, "medium": 3, "long": 4}
_SPATIAL = {
    "geometry", "point", "linestring", "polygon", "multipoint", "multilinestring",
    "multipolygon", "geometrycollection",
}  # fmt: skip
_IMPLICIT_ZERO = {
    FIELD_TYPE.TINY, FIELD_TYPE.SHORT, FIELD_TYPE.INT24, FIELD_TYPE.LONG, FIELD_TYPE.LONGLONG,
    FIELD_TYPE.NEWDECIMAL, FIELD_TYPE.FLOAT, FIELD_TYPE.DOUBLE, FIELD_TYPE.YEAR,
}  # fmt: skip
_IMPLICIT_EMPTY = {FIELD_TYPE.VARCHAR, FIELD_TYPE.STRING, FIELD_TYPE.BLOB}
_LABEL = re.compile(r"'((?:[^']|'')*)'")


@dataclass(frozen=True, slots=True)
class MyTable:
    schema: str
    name: str
    columns: tuple[ColumnSpec, ...]
    primary_key: tuple[str, ...]
    # column -> (default expression, the value the rows held when it was added)
    defaults: Mapping[str, tuple[str | None, str | None]] = field(default_factory=dict)

    @property
    def qualified(self) -> str:
        return f"{self.schema}.{self.name}"

    @property
    def key(self) -> tuple[str, ...]:
        return self.primary_key or tuple(c.name for c in self.columns)

    @property
    def json_columns(self) -> frozenset[str]:
        return frozenset(c.name for c in self.columns if c.json)


def _spec(index: int, row: dict[str, Any], json_columns: set[str], key: set[str]) -> ColumnSpec:
    data_type = row["DATA_TYPE"].lower()
    name = row["COLUMN_NAME"]
    column_type = row["COLUMN_TYPE"].lower()
    length_size = 0
    if data_type in _SPATIAL:
        code = FIELD_TYPE.GEOMETRY
    elif data_type.endswith(("blob", "text")):
        code = FIELD_TYPE.BLOB
        length_size = _BLOB_SIZES[data_type.removesuffix("blob").removesuffix("text")]
    else:
        code = _TYPES.get(data_type, FIELD_TYPE.VARCHAR)
    binary = data_type in {"varbinary", "binary", "bit"} or data_type.endswith("blob")
    charset = row["CHARACTER_SET_NAME"]
    labels: tuple[str, ...] = ()
    if code in (FIELD_TYPE.ENUM, FIELD_TYPE.SET):
        labels = tuple(m.replace("''", "'") for m in _LABEL.findall(row["COLUMN_TYPE"]))
    return ColumnSpec(
        index=index,
        name=name,
        type=code,
        nullable=row["IS_NULLABLE"] == "YES",
        unsigned="unsigned" in column_type,
        primary=name in key,
        encoding=None if binary or charset in (None, "binary") else charset,
        charset=None if binary or charset in (None, "binary") else charset_name(charset),
        length_size=length_size,
        fsp=int(row["DATETIME_PRECISION"] or 0),
        precision=int(row["NUMERIC_PRECISION"] or 0) if code == FIELD_TYPE.NEWDECIMAL else 0,
        decimals=int(row["NUMERIC_SCALE"] or 0) if code == FIELD_TYPE.NEWDECIMAL else 0,
        labels=labels,
        json=name in json_columns or data_type == "json",
    )


def table_names(cursor: Any) -> list[tuple[str, str]]:
    """Base tables of every user schema, as (database, table) (a DictCursor)."""
    cursor.execute(
        "SELECT TABLE_SCHEMA, TABLE_NAME FROM information_schema.TABLES"
        " WHERE TABLE_TYPE = 'BASE TABLE' AND TABLE_SCHEMA NOT IN"
        " ('mysql', 'information_schema', 'performance_schema', 'sys')"
        " ORDER BY TABLE_SCHEMA, TABLE_NAME"
    )
    return [(r["TABLE_SCHEMA"], r["TABLE_NAME"]) for r in cursor.fetchall()]


def select_tables(cursor: Any, selects: Callable[[str, str], bool]) -> list[MyTable]:
    """The tables of `table_names` that `selects` accepts."""
    return [load_table(cursor, s, t) for s, t in table_names(cursor) if selects(s, t)]


def load_table(cursor: Any, schema: str, table: str) -> MyTable:
    cursor.execute(
        "SELECT COLUMN_NAME FROM information_schema.KEY_COLUMN_USAGE"
        " WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s AND CONSTRAINT_NAME = 'PRIMARY'"
        " ORDER BY ORDINAL_POSITION",
        (schema, table),
    )
    key = tuple(r["COLUMN_NAME"] for r in cursor.fetchall())
    # MariaDB stores JSON as LONGTEXT with a json_valid() check; the binlog
    # does not mark it, so the check constraint is how JSON columns are known.
    cursor.execute(
        "SELECT CHECK_CLAUSE FROM information_schema.CHECK_CONSTRAINTS"
        " WHERE CONSTRAINT_SCHEMA = %s AND TABLE_NAME = %s",
        (schema, table),
    )
    json_columns = {
        m.group(1)
        for r in cursor.fetchall()
        if (m := re.fullmatch(r"json_valid\(`((?:[^`]|``)+)`\)", r["CHECK_CLAUSE"].strip()))
    }
    cursor.execute(
        "SELECT COLUMN_NAME, DATA_TYPE, COLUMN_TYPE, IS_NULLABLE, CHARACTER_SET_NAME,"
        " NUMERIC_PRECISION, NUMERIC_SCALE, DATETIME_PRECISION, COLUMN_DEFAULT"
        " FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s"
        " ORDER BY ORDINAL_POSITION",
        (schema, table),
    )
    rows = cursor.fetchall()
    columns = tuple(_spec(i, row, json_columns, set(key)) for i, row in enumerate(rows))
    defaults = {
        row["COLUMN_NAME"]: _default(row, spec) for row, spec in zip(rows, columns, strict=True)
    }
    return MyTable(schema, table, columns, key, {n: d for n, d in defaults.items() if any(d)})


def _default(row: dict[str, Any], spec: ColumnSpec) -> tuple[str | None, str | None]:
    """(default, fill) of a column: MariaDB's COLUMN_DEFAULT ('NULL' for an
    explicit NULL, NULL for none). A NOT NULL column without a default filled
    the rows already there with its type's implicit value when it was added."""
    default = row["COLUMN_DEFAULT"]
    if default is not None and default.upper() != "NULL":
        return default, None
    if spec.nullable:
        return None, None
    if spec.type in (FIELD_TYPE.ENUM,) and spec.labels:
        return None, "'" + spec.labels[0].replace("'", "''") + "'"
    if spec.type in _IMPLICIT_ZERO:
        return None, "0"
    if spec.encoding is not None and spec.type in _IMPLICIT_EMPTY:
        return None, "''"
    return None, None
