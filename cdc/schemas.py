"""Table schemas as they travel on the compacted `<prefix>.__schemas` topic.

Column types travel once per table version, not with every message: each
event names the fingerprint of the schema it was written with in the
`cdc.schema` header, and sinks look the fingerprint up in this topic.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

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
    # the source's default expression, as the source writes it
    default: str | None = None
    # the value (a constant default expression, in the source's syntax) rows
    # that existed when the column was added hold, when the source knows it;
    # None with a non-constant `default`: the source gave each row its own
    fill: str | None = None


ChangeKind = Literal["add_column", "drop_column", "rename_column", "alter_column_type"]


@dataclass(frozen=True, slots=True)
class ColumnChange:
    """One step from the table's previous version to this one, as the source
    saw it happen: what a sink replays on the target, in order with the rows."""

    kind: ChangeKind
    column: str  # its name in this version (a dropped column: its last name)
    previous: str = ""  # rename: the old name; type change: the old type
    ddl: str = ""  # the source's statement, when the source saw one


@dataclass(frozen=True, slots=True)
class TableSchema:
    connector: str  # "postgresql" or "mysql"
    schema: str
    table: str
    columns: tuple[Column, ...]
    key: tuple[str, ...]  # primary key (or replica identity) columns, in key order
    # how this version differs from the one the source published before it in
    # the same run (none after a restart: a sink then compares with the target)
    changes: tuple[ColumnChange, ...] = ()
    # no key of its own (PostgreSQL REPLICA IDENTITY FULL, a MySQL table without
    # a primary key): `key` is every column, identical rows may exist, and a
    # sink applies each change in order to one matching row (`sinks.keyless`)
    keyless: bool = False

    @property
    def fingerprint(self) -> str:
        """Stable over restarts and processes: the same table shape gives the same id."""
        return hashlib.sha256(self.to_json()).hexdigest()[:16]

    def to_json(self) -> bytes:
        raw = asdict(self)
        # absent rather than empty: a table without defaults or changes (or
        # with a key) keeps the fingerprint it had before these fields existed
        for column in raw["columns"]:
            for name in ("default", "fill"):
                if column[name] is None:
                    del column[name]
        if not raw["changes"]:
            del raw["changes"]
        if not raw["keyless"]:
            del raw["keyless"]
        return orjson.dumps(raw, option=orjson.OPT_SORT_KEYS)

    @classmethod
    def from_json(cls, data: bytes) -> TableSchema:
        raw = orjson.loads(data)
        return cls(
            connector=raw["connector"],
            schema=raw["schema"],
            table=raw["table"],
            columns=tuple(Column(**column) for column in raw["columns"]),
            key=tuple(raw["key"]),
            changes=tuple(ColumnChange(**change) for change in raw.get("changes", ())),
            keyless=bool(raw.get("keyless", False)),
        )

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(column.name for column in self.columns)

    def column(self, name: str) -> Column:
        for column in self.columns:
            if column.name == name:
                return column
        raise KeyError(f"{self.schema}.{self.table} has no column {name!r}")
