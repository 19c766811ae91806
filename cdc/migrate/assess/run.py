"""`cdc assess`: everything a migration needs checked before it starts, on
both sides, each finding with its fix."""

from __future__ import annotations

from cdc.ddl.model import TableDef
from cdc.migrate.assess import target as assess_target
from cdc.migrate.assess.model import Assessment, TableFacts
from cdc.migrate.connections import is_postgres, mysql_connect, pg_connect
from cdc.migrate.schema.apply import DB_ERRORS
from cdc.migrate.schema.plan import build, mysql_key_collation, target_name
from cdc.mysql import assess as assess_mysql
from cdc.mysql import catalog as mysql_catalog
from cdc.mysql import inspect as inspect_mysql
from cdc.mysql.setup import is_mariadb
from cdc.postgres import assess as assess_postgres
from cdc.postgres import catalog as pg_catalog
from cdc.postgres import inspect as inspect_postgres
from cdc.postgres.types import TypeRegistry
from cdc.settings import MysqlSource, MysqlTarget, PostgresSource, PostgresTarget, Settings

NO_TABLES_FIX = "list tables as schema.table (MySQL: database.table), or check the patterns"


def _source(settings: Settings, report: Assessment) -> list[tuple[TableDef, TableFacts]]:
    """Source checks and table facts; a source that cannot be reached raises
    (the driver's error): without it there is nothing to assess."""
    source = settings.source
    found: list[tuple[TableDef, TableFacts]] = []
    if isinstance(source, PostgresSource):
        with pg_connect(source.dsn) as conn:
            assess_postgres.check_server(conn, source, report)
            tables = pg_catalog.select_tables(conn, source.selects)
            registry = TypeRegistry(conn)
            for table in tables:
                definition = inspect_postgres.table_def(conn, registry, table)
                facts = assess_postgres.table_facts(conn, table, definition, report)
                found.append((definition, facts))
            if tables:
                assess_postgres.check_publication(conn, source, tables, report)
    else:
        assert isinstance(source, MysqlSource)
        with mysql_connect(source.dsn) as conn:
            with conn.cursor() as cursor:
                assess_mysql.check_server(cursor, source, report)
                mariadb = is_mariadb(cursor)
                tables_my = mysql_catalog.select_tables(cursor, source.selects)
                definitions = [inspect_mysql.table_def(cursor, t, mariadb) for t in tables_my]
            for table_my, definition in zip(tables_my, definitions, strict=True):
                facts = assess_mysql.table_facts(conn, table_my, definition, report)
                found.append((definition, facts))
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
    settings: Settings, found: list[tuple[TableDef, TableFacts]], collation: str
) -> None:
    """What the target DDL (as `cdc schema` makes it) changes, per table."""
    plan = build(settings, [definition for definition, _ in found], collation)
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
        name = target_name(definition, settings)
        facts.target = f"{name[0]}.{name[1]}"


def _target(
    settings: Settings, found: list[tuple[TableDef, TableFacts]], report: Assessment
) -> str:
    """Target checks; the MySQL target's key collation (for the DDL) or ""."""
    target = settings.target
    named = [(definition, target_name(definition, settings)) for definition, _ in found]
    source_bytes = sum(facts.size_bytes or 0 for _, facts in found)
    try:
        if isinstance(target, PostgresTarget):
            with pg_connect(target.dsn) as conn:
                assess_target.check_postgres(conn, target, named, source_bytes, report)
            return ""
        assert isinstance(target, MysqlTarget)
        with mysql_connect(target.dsn) as conn:
            assess_target.check_mysql(conn, target, named, source_bytes, report)
            return mysql_key_collation(conn)
    except DB_ERRORS as exc:
        report.add(
            "target",
            "connect",
            "blocker",
            f"cannot reach the target: {type(exc).__name__}: {str(exc).strip()}",
            "check target.dsn, the server, and that the user may log in from here",
        )
        return ""


def assess(settings: Settings) -> Assessment:
    report = Assessment(
        "postgresql" if is_postgres(settings.source) else "mysql",
        None
        if settings.target is None
        else ("postgresql" if is_postgres(settings.target) else "mysql"),
    )
    found = _source(settings, report)
    report.tables = [facts for _, facts in found]
    assess_target.check_kafka(settings, report)
    if settings.target is not None:
        collation = _target(settings, found, report)
        _translation(settings, found, collation)
    return report
