"""What `cdc verify` asks of an engine: a table's columns, and the SQL that
writes a row's canonical text so that both sides hash it alike.

A column belongs to a family. Two columns compare in the database when their
families are in one group below; the text each engine writes is then the same
byte for byte:

| family | PostgreSQL | MySQL/MariaDB |
|---|---|---|
| int, bool | `c::text` (bool as 1/0) | `CAST(c AS CHAR)` |
| decimal | `trim_scale(c)::text` | the decimal text without trailing zeros |
| text, uuid | `c::text` | `CONVERT(c USING utf8mb4)` (enum: its label) |
| bytes | `encode(c, 'hex')` | `LOWER(HEX(c))` |
| timestamp, timestamptz | `to_char(...)`, tz in UTC | `DATE_FORMAT(...)`, session in UTC |
| date | `to_char(c, 'YYYY-MM-DD')` | `DATE_FORMAT(c, '%Y-%m-%d')` |

Floats, JSON across engines, times, intervals and anything else are read and
hashed in Python (`cdc.migrate.verify.canonical`), whose form needs no agreement
from the servers. Two sides of one engine compare any type whose name is the
same on both (and not `json`, whose text keeps the input's spacing) by its
output text, which the fixed session settings make identical.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from cdc.engine.session import Session

_GROUPS = {
    "int": "number",
    "bool": "number",
    "decimal": "number",
    "text": "text",
    "uuid": "text",
    "bytes": "bytes",
    "timestamp": "timestamp",
    "timestamptz": "timestamptz",
    "date": "date",
}


@dataclass(frozen=True)
class ColumnInfo:
    name: str
    type: str  # the engine's type name
    family: str  # see the module's table; json, float, set, or "other" for the rest


@dataclass(frozen=True)
class TableInfo:
    columns: tuple[ColumnInfo, ...]
    key: tuple[str, ...]

    def column(self, name: str) -> ColumnInfo | None:
        return next((c for c in self.columns if c.name == name), None)


def comparable_in_sql(pairs: Sequence[tuple[ColumnInfo, ColumnInfo]], same_engine: bool) -> bool:
    """Whether every (source, target) column pair writes the same canonical text in SQL."""
    for ours, theirs in pairs:
        group = _GROUPS.get(ours.family)
        if group is not None and group == _GROUPS.get(theirs.family):
            continue
        if same_engine and ours.type == theirs.type and ours.type != "json":
            continue
        return False
    return True


class VerifySql(Protocol):
    """An engine's part in `cdc verify`."""

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

    def decoder(self, column: ColumnInfo) -> Callable[[Any], Any] | None:
        """How a value read from this column becomes what the other engine's driver
        gives for it, before it is hashed in Python; None: as read."""
        ...
