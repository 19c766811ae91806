"""Table schemas as they travel on the compacted `<prefix>.__schemas` topic.

Column types travel once per table version, not with every message: each
event names the fingerprint of the schema it was written with in the
`cdc.schema` header, and sinks look the fingerprint up in this topic.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field
from typing import Any

import orjson

SCHEMA_HEADER = "cdc.schema"


def fingerprint_of(headers: object) -> bytes | None:
    """The schema fingerprint a message's headers (as confluent-kafka gives
    them) name, or None. The source writes its header first: no dict per
    message on the common path."""
    if type(headers) is list and headers:
        name, value = headers[0]
        if name == SCHEMA_HEADER:
            return value if type(value) is bytes else None
    found = dict(headers or ()).get(SCHEMA_HEADER)  # type: ignore[call-overload]
    return found if type(found) is bytes else None


@dataclass(frozen=True, slots=True)
class Column:
    name: str
    type: str  # the source engine's type name, e.g. "numeric(10,2)", "bigint unsigned"
    nullable: bool = True
    # engine-specific details a sink needs to convert exactly (type oid,
    # enum labels, unsigned, charset, ...); part of the fingerprint
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class TableSchema:
    connector: str  # "postgresql" or "mysql"
    schema: str
    table: str
    columns: tuple[Column, ...]
    key: tuple[str, ...]  # primary key (or replica identity) columns, in key order

    @property
    def fingerprint(self) -> str:
        """Stable over restarts and processes: the same table shape gives the same id."""
        return hashlib.sha256(self.to_json()).hexdigest()[:16]

    def to_json(self) -> bytes:
        return orjson.dumps(asdict(self), option=orjson.OPT_SORT_KEYS)

    @classmethod
    def from_json(cls, data: bytes) -> TableSchema:
        raw = orjson.loads(data)
        return cls(
            connector=raw["connector"],
            schema=raw["schema"],
            table=raw["table"],
            columns=tuple(Column(**column) for column in raw["columns"]),
            key=tuple(raw["key"]),
        )

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(column.name for column in self.columns)

    def column(self, name: str) -> Column:
        for column in self.columns:
            if column.name == name:
                return column
        raise KeyError(f"{self.schema}.{self.table} has no column {name!r}")
