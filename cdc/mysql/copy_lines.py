"""MariaDB writes PostgreSQL's COPY lines itself, for the direct copy into
a PostgreSQL target.

Decoding rows in Python is what limits the row path (`sinks.direct_writer`):
here the source server formats each row as one COPY line and Python only
moves the lines to the target's COPY. Each column is formatted the way the
row path converts it into the type `target.create_tables` gives it; a table
with any other column type, or whose target column has another type (not
`native` in the target's `cdc.bulk.CopyTarget`), takes the row path.

The lines are CSV (`COPY ... (FORMAT csv)`): text is quoted with its quotes
doubled, one REPLACE per value, where the text format needs four (backslash,
tab, newline, carriage return), which took MariaDB twice the time per row.
NULL is the empty unquoted field; an empty string is `""`, so the two stay
apart. Bytes are `\\x` hex, which CSV passes to bytea untouched.

Expressions use `CHAR(n USING utf8mb4)` rather than backslashes in string
literals, so they mean the same whatever the server's `sql_mode`.
"""

from __future__ import annotations

from cdc.bulk import CopyTarget
from cdc.mysql.dialect import quote
from cdc.schemas import Column, TableSchema

_BACKSLASH = "CHAR(92 USING utf8mb4)"
_NUMBER_SOURCES = ("tinyint", "smallint", "mediumint", "int", "bigint", "year", "decimal")
_TEXT_SOURCES = ("char", "varchar", "tinytext", "text", "mediumtext", "longtext", "enum", "json")
_BYTES_SOURCES = ("binary", "varbinary", "tinyblob", "blob", "mediumblob", "longblob")


def _quoted(expr: str) -> str:
    """A CSV field that holds any text, the empty string included."""
    return f"CONCAT('\"', REPLACE({expr}, '\"', '\"\"'), '\"')"


def _no_zero_date(name: str, value: str) -> str:
    # dates Python cannot hold (zero dates, year 0) are NULL on the row path
    # with source.zero_dates: null ('error' takes the row path, which raises)
    return f"IF(YEAR({name}) = 0 OR MONTH({name}) = 0 OR DAYOFMONTH({name}) = 0, NULL, {value})"


def _field(column: Column, zero_dates: str) -> str | None:
    """The SQL of one column's CSV field (NULL still to be replaced), or None."""
    name = quote(column.name)
    source = column.type
    if source.startswith(_NUMBER_SOURCES):
        return name
    if zero_dates == "null" and source == "date":
        return _no_zero_date(name, name)
    if zero_dates == "null" and source.startswith(("datetime(", "timestamp(")):
        # the server's own text, ISO with the column's fractional digits, which
        # PostgreSQL reads as DATE_FORMAT would write it, at 0.2 µs less a value;
        # the session runs in UTC: a TIMESTAMP's text is UTC
        value = f"CONCAT({name}, '+00')" if source.startswith("timestamp") else name
        return _no_zero_date(name, value)
    if source.startswith(_TEXT_SOURCES):
        return _quoted(name)
    if source in _BYTES_SOURCES:
        return f"CONCAT({_BACKSLASH}, 'x', HEX({name}))"
    return None


def line_sql(schema: TableSchema, target: CopyTarget, zero_dates: str) -> str | None:
    """The select expression of one CSV COPY line per row, for a statement with
    parameters (`%` doubled), or None when a column needs the row path."""
    fields = []
    for column in schema.columns:
        if column.name not in target.native:
            return None  # not the type create_tables gives: the row path converts it
        field = _field(column, zero_dates)
        if field is None:
            return None
        fields.append(f"IFNULL({field}, '')")
    # text, never a binary string (which the driver would give as bytes)
    return f"CONVERT(CONCAT_WS(',', {', '.join(fields)}) USING utf8mb4)"
