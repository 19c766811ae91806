"""`cdc schema`: the target DDL of a pipeline's tables, read from the source
catalog and rendered for the target engine."""

from __future__ import annotations

from dataclasses import dataclass, field

from cdc.ddl.model import AFTER_COPY, TABLES, Notes, Statement, TableDef, keyless_cost
from cdc.engine import Sides
from cdc.engine.cutover import TableName
from cdc.engine.schema import TargetDdl
from cdc.settings import Settings


@dataclass
class SchemaPlan:
    source: str  # "postgresql" or "mysql"
    target: str
    tables: list[TableDef]
    statements: list[Statement] = field(default_factory=list)
    notes: Notes = field(default_factory=Notes)

    def phase(self, phase: str) -> list[Statement]:
        return [s for s in self.statements if s.phase == phase]


def target_name(table: TableDef, sides: Sides) -> TableName:
    """Where the sink writes the table (`Engine.target_table`)."""
    return sides.target.target_table(table.schema.schema, table.schema.table)


def build(settings: Settings, sides: Sides, tables: list[TableDef], ddl: TargetDdl) -> SchemaPlan:
    """Every table's statements, tables first, then what is faster after the
    initial copy; `ddl`: the target's (`Engine.ddl`)."""
    plan = SchemaPlan(sides.source.name, sides.target.name, tables)
    notes = plan.notes
    seen: dict[tuple[str, str], str] = {}
    rendered: list[Statement] = []
    for table in tables:
        name = target_name(table, sides)
        if name in seen:
            notes.problem(
                table,
                "",
                f"meets {seen[name]} in one target table {name[0]}.{name[1]}:"
                " replicate one of them, or each schema to its own target database",
            )
            continue
        seen[name] = table.qualified
        if not table.primary_key:
            notes.warn(table, "", _no_key(table))
        rendered += ddl.render(table, name, notes)
    if not tables:
        notes.add(
            "",
            "",
            "problem",
            "no table of the source matches source.tables: list tables as schema.table"
            " (MySQL: database.table), or check the include/exclude patterns",
        )
    if settings.transforms:
        notes.add(
            "",
            "",
            "warning",
            "transforms are not applied here: tables they rename, route or reshape differ"
            " (target.create_tables creates those as the transforms make them)",
        )
    unique: dict[tuple[str, ...], Statement] = {}
    for statement in rendered:  # a schema or enum type shared by tables: once
        unique.setdefault(
            (statement.kind, statement.schema, statement.table, statement.name), statement
        )
    ordered = list(unique.values())
    plan.statements = [s for s in ordered if s.phase == TABLES] + [
        s for s in ordered if s.phase == AFTER_COPY
    ]
    return plan


def _no_key(table: TableDef) -> str:
    if table.schema.keyless:
        return keyless_cost(table) + "; add a primary key on the source if the table can have one"
    # a unique key stands in for it (MySQL)
    return (
        f"no primary key: its rows travel keyed by ({', '.join(table.schema.key)}), which"
        " the target table gets as its primary key; add a primary key on the source"
    )
