"""Table schemas of the MySQL source, named the same way from the binlog's
table map and from information_schema, so both paths give one fingerprint."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from pymysqlreplication.constants import FIELD_TYPE

from cdc.mysql.column_types import ColumnSpec
from cdc.schemas import Column, TableSchema

CONNECTOR = "mysql"

_INTEGERS = {
    FIELD_TYPE.TINY: "tinyint",
    FIELD_TYPE.SHORT: "smallint",
    FIELD_TYPE.INT24: "mediumint",
    FIELD_TYPE.LONG: "int",
    FIELD_TYPE.LONGLONG: "bigint",
}
_TEMPORAL = {
    FIELD_TYPE.TIME: "time",
    FIELD_TYPE.TIME2: "time",
    FIELD_TYPE.DATETIME: "datetime",
    FIELD_TYPE.DATETIME2: "datetime",
    FIELD_TYPE.TIMESTAMP: "timestamp",
    FIELD_TYPE.TIMESTAMP2: "timestamp",
}
_BLOBS = {1: "tiny", 2: "", 3: "medium", 4: "long"}
_SIMPLE = {
    FIELD_TYPE.FLOAT: "float",
    FIELD_TYPE.DOUBLE: "double",
    FIELD_TYPE.BIT: "bit",
    FIELD_TYPE.YEAR: "year",
    FIELD_TYPE.DATE: "date",
    FIELD_TYPE.NEWDATE: "date",
    FIELD_TYPE.ENUM: "enum",
    FIELD_TYPE.SET: "set",
    FIELD_TYPE.JSON: "json",
    FIELD_TYPE.GEOMETRY: "geometry",
}


def type_name(spec: ColumnSpec) -> str:
    """ "bigint unsigned", "decimal(65,30)", "datetime(6)", "varchar", "longtext", ..."""
    t = spec.type
    if t in _INTEGERS:
        return _INTEGERS[t] + (" unsigned" if spec.unsigned else "")
    if t in (FIELD_TYPE.NEWDECIMAL, FIELD_TYPE.DECIMAL):
        return f"decimal({spec.precision},{spec.decimals})"
    if t in _TEMPORAL:
        return f"{_TEMPORAL[t]}({spec.fsp})"
    if spec.json:
        return "json"
    if t in (FIELD_TYPE.VARCHAR, FIELD_TYPE.VAR_STRING):
        return "varbinary" if spec.encoding is None else "varchar"
    if t == FIELD_TYPE.STRING:
        return "binary" if spec.encoding is None else "char"
    if t in (FIELD_TYPE.BLOB, FIELD_TYPE.TINY_BLOB, FIELD_TYPE.MEDIUM_BLOB, FIELD_TYPE.LONG_BLOB):
        size = _BLOBS.get(spec.length_size, "")
        return size + ("blob" if spec.encoding is None else "text")
    return _SIMPLE.get(t, f"type {t}")


def column(spec: ColumnSpec, default: str | None = None, fill: str | None = None) -> Column:
    extra: dict[str, object] = {}
    if spec.labels:
        extra["labels"] = list(spec.labels)
    if spec.charset is not None:
        extra["charset"] = spec.charset
    return Column(spec.name, type_name(spec), spec.nullable, extra, default, fill)


def table_schema(
    schema: str,
    table: str,
    specs: Sequence[ColumnSpec],
    key: Sequence[str],
    defaults: Mapping[str, tuple[str | None, str | None]],
) -> TableSchema:
    """`key`: the primary key, or every column (or none) for a table without
    one, which is then keyless (`TableSchema.keyless`): the specs of both
    paths (table map with full metadata, information_schema) mark the primary
    key's columns; `defaults`: column -> (default, fill), from information_schema."""
    columns = tuple(column(spec, *defaults.get(spec.name, (None, None))) for spec in specs)
    names = tuple(c.name for c in columns)
    keyless = not key or (not any(spec.primary for spec in specs) and set(key) == set(names))
    return TableSchema(CONNECTOR, schema, table, columns, tuple(key) or names, keyless=keyless)
