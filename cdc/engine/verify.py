"""What `cdc verify` asks of an engine: a table's columns, and the SQL that
writes or reads a row's values so that both sides hash them alike.

A column belongs to a family (its engine's type, named engine-neutrally). Each
compared (source, target) pair of columns gets a form, what its values mean on
both sides (`compared_as`), and both columns are written or read in that form:

- number (int, bool, year, decimal): digits without trailing zeros, bool 1/0
- float4 (a real or FLOAT with a float), float8: the shortest decimal that reads
  back as the same single-precision (float4) or double value
- text, char, uuid (text, char, enum, uuid): UTF-8; char without trailing spaces
  (CHAR pads them); uuid as 32 lower-case hex digits
- bytes: hex; bit (a BIT with bytes or a BIT): its number
- timestamp (timestamp, timestamptz): `YYYY-MM-DDTHH:MM:SS.ffffff` in UTC; date
- duration (interval, time, or one of them with text): microseconds, a month
  30 days and a day 24 hours as PostgreSQL compares intervals (`'1 day'` equals
  `'24:00:00'`); text read as ISO-8601 (the stream's) or `[-]H:MM:SS`
- timetz (with timetz or text): microseconds of the day and the UTC offset
- inet (an inet or cidr with text): the address and the prefix length
- json (json, jsonb, a PostgreSQL array, or one with text): the document, keys
  sorted, without spacing, numbers exact
- set (a SET with a SET, an array or text): the members, sorted, each once
- native (anything else of one engine and one type name): the engine's text
- other: the drivers' values (`cdc.migrate.verify.canonical`)

Pairs of number, text, char, uuid, bytes, timestamp and date compare in the
database (`SQL_FORMS`), across engines too; of one engine and one type, so do
floats, durations, times with zone, bits, jsonb and native pairs. A table with any
other pair is read (`VerifySql.select`) and hashed in Python
(`cdc.migrate.verify.forms`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Protocol

from cdc.engine.session import Session

SQL_FORMS = frozenset({"number", "text", "char", "uuid", "bytes", "timestamp", "date"})
# one engine writes these alike for two columns of one type (durations: of any type
# but text, which needs Python to read a duration)
_SAME_ENGINE_FORMS = frozenset({"float4", "float8", "duration", "timetz", "bit", "native"})
_NUMBERS = frozenset({"int", "bool", "year", "decimal"})
_TEXTS = frozenset({"text", "char", "enum", "uuid"})
_JSONS = frozenset({"json", "jsonb"})


@dataclass(frozen=True)
class ColumnInfo:
    name: str
    type: str  # the engine's type name
    family: str  # see the module's table; "other" for the rest
    form: str = ""  # how it compares with its counterpart (`compared_as`); "" not yet paired


@dataclass(frozen=True)
class TableInfo:
    columns: tuple[ColumnInfo, ...]
    key: tuple[str, ...]

    def column(self, name: str) -> ColumnInfo | None:
        return next((c for c in self.columns if c.name == name), None)


def compared_as(ours: ColumnInfo, theirs: ColumnInfo, same_engine: bool) -> str:
    """The form (see the module's table) in which a source and a target column compare."""
    pair = {ours.family, theirs.family}
    same_type = same_engine and ours.type == theirs.type
    forms = (
        ("number", pair <= _NUMBERS),
        ("float4" if "float4" in pair else "float8", pair <= {"float4", "float8"}),
        ("set", "set" in pair and pair <= {"set", "array", "text"}),
        ("json", bool(pair & _JSONS) and pair <= {*_JSONS, "array", "text"}),
        ("bit", "bit" in pair and pair <= {"bit", "bytes"}),
        ("duration", bool(pair & {"interval", "time"}) and pair <= {"interval", "time", "text"}),
        ("timetz", "timetz" in pair and pair <= {"timetz", "text"}),
        ("inet", pair == {"inet", "text"}),
        ("timestamp", pair <= {"timestamp", "timestamptz"}),
        ("date", pair == {"date"}),
        ("bytes", pair == {"bytes"}),
        ("uuid", "uuid" in pair and pair <= _TEXTS),
        ("char", "char" in pair and pair <= _TEXTS),
        ("text", pair <= _TEXTS),
        ("native", same_type),
    )
    return next((form for form, fits in forms if fits), "other")


def paired(
    pairs: Sequence[tuple[ColumnInfo, ColumnInfo]], same_engine: bool
) -> tuple[list[ColumnInfo], list[ColumnInfo], bool]:
    """Each side's columns with the form of their pair, and whether every pair writes the
    same canonical text in SQL (else the rows are hashed in Python)."""
    ours, theirs, in_sql = [], [], True
    for source, target in pairs:
        form = compared_as(source, target, same_engine)
        ours.append(replace(source, form=form))
        theirs.append(replace(target, form=form))
        in_sql = in_sql and (form in SQL_FORMS or (same_engine and _alike(source, target, form)))
    return ours, theirs, in_sql


def _alike(source: ColumnInfo, target: ColumnInfo, form: str) -> bool:
    """Whether two columns of one engine write the same text for one value of `form`."""
    if "text" in (source.family, target.family):
        return False  # a duration or a time with zone in text: Python reads it
    if form == "json":  # jsonb prints in one spacing and key order; json as it came
        return source.family == target.family == "jsonb"
    return form in _SAME_ENGINE_FORMS and (source.type == target.type or form == "duration")


class VerifySql(Protocol):
    """An engine's part in `cdc verify`. Columns come with their form (`paired`)."""

    def connect(self) -> Session:
        """A session whose values print the same on every connection: UTC times, ISO
        dates, utf8mb4."""
        ...

    def describe(self, session: Session, schema: str, table: str) -> TableInfo | None:
        """The table's columns and primary key; None when it does not exist."""
        ...

    def key(self, column: ColumnInfo) -> str:
        """The key column as compared and ordered: byte-wise for text (UTF-8 bytes sort
        alike everywhere, so a key range holds the same rows on both engines)."""
        ...

    def row_hash(self, columns: Sequence[ColumnInfo]) -> str:
        """SQL for a 60-bit integer from the MD5 of the row's canonical text: a null
        bitmap (so NULL and '' differ), then each column's text, separated by |."""
        ...

    def select(self, column: ColumnInfo) -> str:
        """SQL reading the column for hashing in Python (`cdc.migrate.verify.forms`):
        what the driver gives for it, or a form the driver cannot (PostgreSQL's
        interval in microseconds, MySQL's FLOAT as its exact double)."""
        ...
