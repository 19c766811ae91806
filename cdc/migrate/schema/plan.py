"""`cdc schema`: the target DDL of a pipeline's tables, read from the source
catalog and rendered for the target engine."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from cdc.ddl.model import AFTER_COPY, TABLES, Notes, Statement, TableDef
from cdc.migrate.connections import is_postgres, mysql_connect, pg_connect
from cdc.mysql import catalog as mysql_catalog
from cdc.mysql import ddl as ddl_mysql
from cdc.mysql import inspect as inspect_mysql
from cdc.mysql.setup import is_mariadb
from cdc.postgres import catalog as pg_catalog
from cdc.postgres import ddl as ddl_postgres
from cdc.postgres import inspect as inspect_postgres
from cdc.postgres.types import TypeRegistry
from cdc.settings import MysqlTarget, Settings
from sinks.mysql.tables import key_collation


@dataclass
class SchemaPlan:
    source: str  # "postgresql" or "mysql"
    target: str
    tables: list[TableDef]
    statements: list[Statement] = field(default_factory=list)
    notes: Notes = field(default_factory=Notes)

    def phase(self, phase: str) -> list[Statement]:
        return [s for s in self.statements if s.phase == phase]


def read_tables(settings: Settings) -> list[TableDef]:
    """The configured source tables, from the source catalog."""
    source = settings.source
    if is_postgres(source):
        with pg_connect(source.dsn) as conn:
            registry = TypeRegistry(conn)
            return [
                inspect_postgres.table_def(conn, registry, table)
                for table in pg_catalog.select_tables(conn, source.selects)
            ]
    with mysql_connect(source.dsn) as conn, conn.cursor() as cursor:
        mariadb = is_mariadb(cursor)
        return [
            inspect_mysql.table_def(cursor, table, mariadb)
            for table in mysql_catalog.select_tables(cursor, source.selects)
        ]


def target_name(table: TableDef, settings: Settings) -> tuple[str, str]:
    """Where the sink writes the table: the same schema.table on PostgreSQL,
    the DSN's database on MySQL."""
    target = settings.target
    if isinstance(target, MysqlTarget):
        return target.dsn.connect_kwargs()["database"] or "", table.schema.table
    return table.schema.schema, table.schema.table


def mysql_key_collation(conn: Any) -> str:
    """The collation of text key columns on this MySQL/MariaDB target (sinks.mysql.tables)."""
    with conn.cursor() as cur:
        cur.execute("SELECT VERSION() AS v")
        return key_collation(str(cur.fetchone()["v"]))


def build(settings: Settings, tables: list[TableDef], key_collation: str = "") -> SchemaPlan:
    """Every table's statements, tables first, then what is faster after the
    initial copy. `key_collation`: the MySQL target's (sinks.mysql.tables)."""
    target = settings.target
    assert target is not None
    engine = "postgresql" if is_postgres(target) else "mysql"
    plan = SchemaPlan("postgresql" if is_postgres(settings.source) else "mysql", engine, tables)
    notes = plan.notes
    seen: dict[tuple[str, str], str] = {}
    rendered: list[Statement] = []
    for table in tables:
        name = target_name(table, settings)
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
            notes.warn(table, "", "no primary key: every column forms the target's primary key")
        if engine == "postgresql":
            rendered += ddl_postgres.render(table, name, notes)
        else:
            rendered += ddl_mysql.render(table, name, key_collation, notes)
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
