"""`cdc assess` of the Kafka cluster and the target: reachable, and the
target user's rights to write what the sink writes."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import psycopg
import pymysql
from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient
from psycopg import sql

from cdc.ddl.model import TableDef
from cdc.migrate.assess.model import Assessment
from cdc.settings import MysqlTarget, PostgresTarget, Settings
from sinks.mysql.statements import quote

TARGET = "target"
KAFKA_TIMEOUT_S = 10.0
_DML = ("SELECT", "INSERT", "UPDATE", "DELETE")
_FREE_SPACE = "free disk space is not visible over SQL: check that the volume holds"


def human_size(n: int) -> str:
    value = float(n)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if value < 1024 or unit == "TB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"


def check_kafka(settings: Settings, report: Assessment) -> None:
    try:
        admin = AdminClient(settings.kafka.producer_config())
        topics = admin.list_topics(timeout=KAFKA_TIMEOUT_S).topics
    except KafkaException as exc:
        report.add(
            "kafka",
            "reachable",
            "blocker",
            f"Kafka at {settings.kafka.bootstrap_servers} did not answer: {exc.args[0]}",
            "check kafka.bootstrap_servers, the brokers, and kafka.tls / kafka.sasl",
        )
        return
    prefix = f"{settings.kafka.topic_prefix}."
    ours = sum(1 for name in topics if name.startswith(prefix))
    report.add(
        "kafka", "reachable", "ok", f"{len(topics)} topics, {ours} of this pipeline ({prefix}*)"
    )


def check_postgres(
    conn: psycopg.Connection[Any],
    target: PostgresTarget,
    tables: Sequence[tuple[TableDef, tuple[str, str]]],
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
            _missing_pg_table(conn, target, schema, name, definition, role, report)
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
        f"target database {human_size(size)}; {_FREE_SPACE} about {human_size(source_bytes)} more",
    )


def _missing_pg_table(
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


_GRANT = re.compile(r"GRANT (.+?) ON (\S+) TO", re.IGNORECASE)


def _mysql_rights(conn: Any, database: str) -> set[str]:
    """The privileges the target user holds on every table of `database`."""
    with conn.cursor() as cur:
        cur.execute("SHOW GRANTS FOR CURRENT_USER()")
        lines = [str(next(iter(r.values()))) for r in cur.fetchall()]
    held: set[str] = set()
    scopes = {"*.*", f"{quote(database)}.*", f"{quote(database.replace('_', chr(92) + '_'))}.*"}
    for line in lines:
        found = _GRANT.match(line)
        if found and found.group(2) in scopes:
            privileges = {p.strip().upper() for p in found.group(1).split(",")}
            held |= (
                set(_DML) | {"CREATE", "ALTER"} if "ALL PRIVILEGES" in privileges else privileges
            )
    return held


def check_mysql(
    conn: Any,
    target: MysqlTarget,
    tables: Sequence[tuple[TableDef, tuple[str, str]]],
    source_bytes: int,
    report: Assessment,
) -> None:
    database = target.dsn.connect_kwargs()["database"] or ""
    held = _mysql_rights(conn, database)
    wanted = [*_DML, "CREATE", *(("ALTER",) if target.create_tables else ())]
    missing = [p for p in wanted if p not in held]
    if missing:
        report.add(
            TARGET,
            "privileges",
            "blocker",
            f"the target user lacks {', '.join(missing)} on {database}"
            " (DML for the rows, CREATE for cdc_offsets and create_tables, ALTER to add columns)",
            f"GRANT {', '.join(missing)} ON {quote(database)}.* TO <user>",
        )
    else:
        report.add(TARGET, "privileges", "ok", f"{', '.join(wanted)} on {database}")
    with conn.cursor() as cur:
        try:  # the sink marks what it applies with its own server_id (cdc.applied_marks)
            cur.execute("SET SESSION server_id = @@server_id")
        except pymysql.err.OperationalError as exc:
            report.add(
                TARGET,
                "server_id",
                "blocker",
                f"the target user may not set its session's server_id: {exc.args[1]}",
                "GRANT BINLOG REPLAY ON *.* TO <user> (MariaDB 10.5+;"
                " MySQL 8: SESSION_VARIABLES_ADMIN)",
            )
        for definition, (_, name) in tables:
            cur.execute(
                "SELECT TRIGGER_NAME FROM information_schema.TRIGGERS"
                " WHERE EVENT_OBJECT_SCHEMA = %s AND EVENT_OBJECT_TABLE = %s",
                (database, name),
            )
            triggers = [r["TRIGGER_NAME"] for r in cur.fetchall()]
            if triggers:
                report.add(
                    f"table {definition.qualified}",
                    "target triggers",
                    "warning",
                    f"{database}.{name} has triggers ({', '.join(triggers)}): they fire for"
                    " every row cdc applies",
                    "drop or disable them for the migration, or make them idempotent",
                )
            elif not target.create_tables:
                cur.execute(
                    "SELECT 1 FROM information_schema.TABLES"
                    " WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s",
                    (database, name),
                )
                if cur.fetchone() is None:
                    report.add(
                        f"table {definition.qualified}",
                        "target table",
                        "warning",
                        f"{database}.{name} does not exist on the target",
                        "create it with `cdc schema -c FILE --apply`"
                        " (or set target.create_tables: true)",
                    )
        cur.execute(
            "SELECT COALESCE(SUM(DATA_LENGTH + INDEX_LENGTH), 0) AS size"
            " FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s",
            (database,),
        )
        size = int(cur.fetchone()["size"])
    report.add(
        TARGET,
        "space",
        "ok",
        f"target database {human_size(size)}; {_FREE_SPACE} about {human_size(source_bytes)} more",
    )
