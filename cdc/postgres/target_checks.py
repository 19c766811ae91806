"""`cdc assess` of a PostgreSQL target: the target user's rights to write what
the sink writes, the tables it finds there, and the space they take."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import psycopg
from psycopg import sql

from cdc.ddl.model import TableDef
from cdc.engine.assessment import FREE_SPACE, Assessment, human_size
from cdc.engine.cutover import TableName
from cdc.settings import PostgresTarget

TARGET = "target"
_DML = ("SELECT", "INSERT", "UPDATE", "DELETE")


def check_target(
    conn: psycopg.Connection[Any],
    target: PostgresTarget,
    tables: Sequence[tuple[TableDef, TableName]],
    source_bytes: int,
    report: Assessment,
) -> None:
    blockers = report.count("blocker")
    row = conn.execute(
        "SELECT current_user, rolsuper, pg_database_size(current_database()),"
        " has_schema_privilege('public', 'CREATE'), to_regclass('public.cdc_offsets') IS NOT NULL"
        " FROM pg_roles WHERE rolname = current_user"
    ).fetchone()
    assert row is not None
    user, superuser, size, public_create, has_offsets = row
    role = sql.Identifier(user).as_string(None)
    if not (superuser or has_offsets or public_create):
        report.add(
            TARGET,
            "cdc_offsets",
            "blocker",
            "the sink records its positions in public.cdc_offsets, which it may not create",
            f"GRANT CREATE ON SCHEMA public TO {role} (or create public.cdc_offsets for it)",
        )
    settable = superuser or conn.execute(
        "SELECT has_parameter_privilege('session_replication_role', 'SET')"
    ).fetchone() == (True,)
    if not settable:
        report.add(
            TARGET,
            "session_replication_role",
            "blocker",
            "the sink sets session_replication_role = replica (foreign keys and triggers off"
            " while it applies); the target user may not",
            f"GRANT SET ON PARAMETER session_replication_role TO {role}",
        )
    for definition, (schema, name) in tables:
        ident = sql.Identifier(schema, name).as_string(None)
        found = conn.execute(
            "SELECT c.oid, has_table_privilege(c.oid, 'SELECT'),"
            " has_table_privilege(c.oid, 'INSERT'), has_table_privilege(c.oid, 'UPDATE'),"
            " has_table_privilege(c.oid, 'DELETE') FROM pg_class c WHERE c.oid = to_regclass(%s)",
            (ident,),
        ).fetchone()
        if found is None:
            _missing_table(conn, target, schema, name, definition, role, report)
            continue
        oid, *rights = found
        missing = [p for p, granted in zip(_DML, rights, strict=True) if not granted]
        if missing:
            report.add(
                f"table {definition.qualified}",
                "target privileges",
                "blocker",
                f"the target user may not {', '.join(missing)} on {schema}.{name}",
                f"GRANT {', '.join(missing)} ON {ident} TO {role}",
            )
        triggers = [
            t
            for (t,) in conn.execute(
                "SELECT tgname FROM pg_trigger WHERE tgrelid = %s AND NOT tgisinternal", (oid,)
            )
        ]
        if triggers:
            report.add(
                f"table {definition.qualified}",
                "target triggers",
                "warning",
                f"{schema}.{name} has triggers ({', '.join(triggers)}): they do not fire while"
                " cdc applies (session_replication_role = replica)",
                "make sure the target needs nothing from them during the migration",
            )
    if report.count("blocker") == blockers:
        report.add(
            TARGET,
            "privileges",
            "ok",
            "rows of the existing tables, cdc_offsets, session_replication_role"
            + (", creating the missing tables" if target.create_tables else ""),
        )
    report.add(
        TARGET,
        "space",
        "ok",
        f"target database {human_size(size)}; {FREE_SPACE} about {human_size(source_bytes)} more",
    )


def _missing_table(
    conn: psycopg.Connection[Any],
    target: PostgresTarget,
    schema: str,
    name: str,
    definition: TableDef,
    role: str,
    report: Assessment,
) -> None:
    scope = f"table {definition.qualified}"
    if not target.create_tables:
        report.add(
            scope,
            "target table",
            "warning",
            f"{schema}.{name} does not exist on the target",
            "create it with `cdc schema -c FILE --apply` (or set target.create_tables: true)",
        )
        return
    row = conn.execute(
        "SELECT CASE WHEN n.oid IS NULL THEN has_database_privilege(current_database(), 'CREATE')"
        " ELSE has_schema_privilege(n.oid, 'CREATE') END"
        " FROM (SELECT 1) one LEFT JOIN pg_namespace n ON n.nspname = %s",
        (schema,),
    ).fetchone()
    if row is None or not row[0]:
        report.add(
            scope,
            "target privileges",
            "blocker",
            f"target.create_tables is on, but the target user may not create {schema}.{name}",
            f"GRANT CREATE ON SCHEMA {sql.Identifier(schema).as_string(None)} TO {role}"
            " (or create the table with `cdc schema -c FILE --apply` as its owner)",
        )
