"""`cdc assess`: everything a migration needs checked before it starts, on
both sides, each finding with its fix."""

from __future__ import annotations

from cdc.ddl.model import TableDef
from cdc.engine import Engine, Sides
from cdc.engine.assessment import Assessment, TableFacts
from cdc.engine.schema import TargetDdl
from cdc.errors import SetupError
from cdc.migrate.assess.kafka import check_kafka
from cdc.migrate.assess.target_tables import check_existing
from cdc.migrate.schema.plan import SchemaPlan, build, target_name
from cdc.settings import Settings
from cdc.table_selection import check_selection

NO_TABLES_FIX = "list tables as schema.table (MySQL: database.table), or check the patterns"


def _source(
    settings: Settings, source: Engine, report: Assessment
) -> list[tuple[TableDef, TableFacts]]:
    """Source checks and table facts; a source that cannot be reached raises
    (the driver's error): without it there is nothing to assess."""
    found = source.assess_source(report)
    selection = check_selection(settings.source.tables, source.table_names())
    for name, closest in selection.missing.items():
        report.add(
            "source",
            "tables",
            "blocker",
            f"source.tables lists {name}, which the source does not have"
            + (f" (closest: {', '.join(closest)})" if closest else ""),
            NO_TABLES_FIX,
        )
    for pattern in selection.unmatched:
        report.add(
            "source", "tables", "warning", f"the pattern {pattern} matches no table", NO_TABLES_FIX
        )
    if not found:
        report.add(
            "source",
            "tables",
            "blocker",
            "no table of the source matches source.tables",
            NO_TABLES_FIX,
        )
    return found


def _translation(
    settings: Settings, sides: Sides, found: list[tuple[TableDef, TableFacts]], ddl: TargetDdl
) -> SchemaPlan:
    """What the target DDL (as `cdc schema` makes it) changes, per table."""
    plan = build(settings, sides, [definition for definition, _ in found], ddl)
    by_table = {facts.table: facts for _, facts in found}
    for note in plan.notes.items:
        facts = by_table.get(note.table)
        if facts is None:
            continue
        if note.type_change:
            facts.type_changes.append(
                {"column": note.column, "severity": note.severity, "change": note.message}
            )
        else:
            where = f"{note.column}: " if note.column else ""
            facts.features.append(where + note.message)
    for definition, facts in found:
        name = target_name(definition, sides)
        facts.target = f"{name[0]}.{name[1]}"
    return plan


def _target(
    sides: Sides, found: list[tuple[TableDef, TableFacts]], report: Assessment
) -> tuple[TargetDdl, bool]:
    """Target checks; the target's DDL (for no server in particular if it is
    unreachable), and whether it was reached."""
    target = sides.target
    named = [(definition, target_name(definition, sides)) for definition, _ in found]
    source_bytes = sum(facts.size_bytes or 0 for _, facts in found)
    try:
        target.assess_target(named, source_bytes, report)
        return target.ddl(), True
    except target.errors as exc:
        report.add(
            "target",
            "connect",
            "blocker",
            f"cannot reach the target: {type(exc).__name__}: {str(exc).strip()}",
            "check target.dsn, the server, and that the user may log in from here",
        )
        return target.ddl(offline=True), False


def assess(settings: Settings, source: Engine, target: Engine | None) -> Assessment:
    """The pipeline's assessment; `target` None: a pipeline into Kafka only."""
    report = Assessment(source.name, None if target is None else target.name)
    found = _source(settings, source, report)
    report.tables = [facts for _, facts in found]
    check_kafka(settings, report)
    if target is not None:
        sides = Sides(source, target)
        try:
            sides.check_distinct()
        except SetupError as same:
            report.add("target", "distinct", "blocker", same.message, same.remedy)
        except target.errors:
            pass  # a target it cannot reach is reported next
        ddl, reached = _target(sides, found, report)
        plan = _translation(settings, sides, found, ddl)
        if reached:
            assert settings.target is not None
            with target.catalog() as catalog:
                check_existing(catalog, plan.statements, settings.target.create_tables, report)
    return report
