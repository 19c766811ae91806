"""A source table as the target's DDL needs it, and the statements made from it.

The sinks' `create_tables` path and `cdc schema` both render target tables
from a `TableDef`: the sinks build one from the wire schema alone (columns,
types, key), `cdc schema` from the source catalog (defaults, identity
columns, unique keys, indexes, foreign keys too). One renderer per target
engine (`ddl_postgres`, `ddl_mysql`), one type mapping (`cdc.postgres.target_types`,
`cdc.mysql.target_types`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from cdc.ddl.defaults import parse as parse_default
from cdc.schemas import Column, TableSchema

Phase = Literal["tables", "after_copy"]
Severity = Literal["warning", "problem"]
# Created before the initial copy: the tables. After it, because building them
# once over all rows is faster than maintaining them row by row: the rest.
TABLES: Phase = "tables"
AFTER_COPY: Phase = "after_copy"


@dataclass(frozen=True, slots=True)
class Index:
    name: str
    columns: tuple[str, ...]  # empty when the index is over expressions
    unique: bool
    # PostgreSQL's own CREATE INDEX, for an index over expressions or with a
    # predicate: replayed as is on a PostgreSQL target, left out on MySQL
    definition: str = ""


@dataclass(frozen=True, slots=True)
class ForeignKey:
    name: str
    columns: tuple[str, ...]
    ref_schema: str
    ref_table: str
    ref_columns: tuple[str, ...]
    on_delete: str = ""  # "CASCADE", "SET NULL", ...; empty: NO ACTION
    on_update: str = ""

    @property
    def actions(self) -> str:
        """ " ON DELETE CASCADE ON UPDATE ..." (SQL both engines read), or ""."""
        pairs = (("DELETE", self.on_delete), ("UPDATE", self.on_update))
        return "".join(f" ON {event} {action}" for event, action in pairs if action)


@dataclass(frozen=True, slots=True)
class Generated:
    """A column the server computes. PostgreSQL does not send it on the wire
    (it is not among the columns); MySQL does (it is)."""

    name: str
    type: str  # the source's type name
    expression: str
    stored: bool = True


@dataclass(frozen=True, slots=True)
class TableDef:
    schema: TableSchema  # columns as the stream carries them (catalog types may add lengths)
    # empty: none; the wire key (every column) stands in, unless the table is
    # keyless on the wire: then the target has no primary key either
    primary_key: tuple[str, ...] = ()
    defaults: Mapping[str, str] = field(default_factory=dict)  # column -> source expression
    identity: frozenset[str] = frozenset()  # serial, identity and AUTO_INCREMENT columns
    on_update_now: frozenset[str] = frozenset()  # MySQL ON UPDATE CURRENT_TIMESTAMP columns
    generated: tuple[Generated, ...] = ()
    uniques: tuple[Index, ...] = ()
    indexes: tuple[Index, ...] = ()
    foreign_keys: tuple[ForeignKey, ...] = ()

    @classmethod
    def of(cls, schema: TableSchema) -> TableDef:
        """What the wire schema alone tells (the sinks' create_tables path)."""
        # Only what every target can evaluate: a function of the source's
        # (or its sequence) may not exist there. Rows arrive with their values;
        # the default serves the application after the cut-over.
        defaults = {
            c.name: c.default
            for c in schema.columns
            if c.default is not None and parse_default(c.default, schema.connector) is not None
        }
        return cls(schema, primary_key=() if schema.keyless else schema.key, defaults=defaults)

    @property
    def key(self) -> tuple[str, ...]:
        """The target's primary key; empty for a keyless table, whose sink
        matches rows by every column and lets identical ones be."""
        return self.primary_key or (() if self.schema.keyless else self.schema.key)

    @property
    def qualified(self) -> str:
        return f"{self.schema.schema}.{self.schema.table}"

    @property
    def columns(self) -> tuple[Column, ...]:
        return self.schema.columns


def keyless_cost(table: TableDef) -> str:
    """What a table without a primary key costs the sink, for `cdc assess`
    and `cdc schema`: each of its changes applied alone, and each update and
    delete finding its row by every column."""
    indexes = [i.name for i in (*table.uniques, *table.indexes) if i.columns]
    lookup = (
        f"an index ({', '.join(indexes)}) narrows that lookup"
        if indexes
        else "with no index, each one scans the whole target table"
    )
    return (
        "no primary key: the target table has none either; the sink applies its changes"
        " one at a time, and each update and delete finds its row by every column: " + lookup
    )


@dataclass(frozen=True, slots=True)
class Statement:
    phase: Phase
    kind: Literal["schema", "type", "table", "index", "unique", "foreign_key"]
    schema: str  # target schema (PostgreSQL) or database (MySQL)
    table: str  # the target table it belongs to; "" for a schema or type
    name: str  # the object's name on the target
    sql: str
    # the same CREATE TABLE for a scratch table: the target parses it, and the
    # columns it gets are what an existing table is compared with
    probe_sql: str = ""
    comment: str = ""  # what the DDL does not reproduce, printed above it as SQL comments

    @property
    def target(self) -> str:
        """What it creates, as people name it: schema, type, schema.table, or
        schema.table name (an index or foreign key)."""
        if self.kind in ("schema", "type"):
            return self.name
        table = f"{self.schema}.{self.table}"
        return table if self.kind == "table" else f"{table} {self.name}"


@dataclass(frozen=True, slots=True)
class Note:
    table: str  # source table, schema.table
    column: str  # "" for the table itself
    severity: Severity
    message: str
    type_change: bool = False  # what a column's type becomes (the others: defaults, indexes...)

    def __str__(self) -> str:
        where = ".".join(part for part in (self.table, self.column) if part)
        return (
            f"{self.severity}: {where}: {self.message}"
            if where
            else f"{self.severity}: {self.message}"
        )


@dataclass
class Notes:
    """What the translation changed (warnings) or could not translate (problems)."""

    items: list[Note] = field(default_factory=list)

    def add(
        self, table: str, column: str, severity: Severity, message: str, type_change: bool = False
    ) -> None:
        self.items.append(Note(table, column, severity, message, type_change))

    def warn(self, table: TableDef, column: str, message: str) -> None:
        self.add(table.qualified, column, "warning", message)

    def problem(self, table: TableDef, column: str, message: str) -> None:
        self.add(table.qualified, column, "problem", message)

    @property
    def problems(self) -> list[Note]:
        return [n for n in self.items if n.severity == "problem"]
