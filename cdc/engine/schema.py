"""What `cdc schema` asks of a target engine: its DDL, and a look at what it has."""

from __future__ import annotations

from typing import Protocol

from cdc.ddl.model import Notes, Statement, TableDef
from cdc.engine.cutover import TableName

ColumnShape = tuple[str, str, bool]  # name, type as the target spells it, nullable


class TargetDdl(Protocol):
    def render(self, table: TableDef, name: TableName, notes: Notes) -> list[Statement]:
        """The statements that create `table` as `name` on the target: the table with
        its keys first, then secondary indexes and foreign keys."""
        ...


class TargetCatalog(Protocol):
    """The target's objects, through one session."""

    def exists(self, statement: Statement) -> bool: ...

    def columns(self, schema: str, table: str) -> list[ColumnShape]: ...

    def probe(self, statement: Statement) -> list[ColumnShape]:
        """The columns the statement's table would have, as the target itself parses
        them (a scratch table, left behind by nothing)."""
        ...

    def execute(self, statement: Statement) -> None: ...
