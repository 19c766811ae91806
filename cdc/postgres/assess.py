"""`cdc assess` of a PostgreSQL source: the server's readiness, the source
user's rights, and each table's size, key and copy speed."""

from __future__ import annotations

import time
from typing import Any

import psycopg
from psycopg import sql

from cdc.ddl.model import TableDef, keyless_cost
from cdc.engine.assessment import EXACT_COUNT_BYTES, SAMPLE_ROWS, Assessment, TableFacts
from cdc.postgres.catalog import PgTable
from cdc.postgres.setup import identity_problem, server_problems
from cdc.settings import PostgresSource

SOURCE = "source"
_IDENTITY = {"d": "none (default)", "f": "replica identity full", "i": "replica identity index"}


def _one(conn: psycopg.Connection[Any], query: str, params: tuple[Any, ...] = ()) -> Any:
    row = conn.execute(query.encode(), params).fetchone()
    assert row is not None
    return row[0] if len(row) == 1 else row


def check_server(conn: psycopg.Connection[Any], source: PostgresSource, report: Assessment) -> None:
    problems = server_problems(conn)
    for problem in problems:
        report.add(SOURCE, "server", "blocker", problem.message, problem.remedy)
    if not problems:
        report.add(SOURCE, "server", "ok", "wal_level logical, REPLICATION privilege, UTF8")
    slots, used, ours = _one(
        conn,
        "SELECT current_setting('max_replication_slots')::int,"
        " (SELECT count(*) FROM pg_replication_slots),"
        " EXISTS (SELECT 1 FROM pg_replication_slots WHERE slot_name = %s)",
        (source.slot_name,),
    )
    if ours:
        report.add(SOURCE, "replication slot", "ok", f"slot {source.slot_name} exists")
    elif used >= slots:
        report.add(
            SOURCE,
            "replication slot",
            "blocker",
            f"all {slots} replication slots are taken (max_replication_slots)",
            "drop an unused slot (pg_drop_replication_slot) or raise max_replication_slots"
            " and restart PostgreSQL",
        )
    else:
        report.add(SOURCE, "replication slot", "ok", f"{slots - used} of {slots} slots free")
    senders, active = _one(
        conn,
        "SELECT current_setting('max_wal_senders')::int,"
        " (SELECT count(*) FROM pg_stat_replication)",
    )
    if active >= senders:
        report.add(
            SOURCE,
            "wal senders",
            "blocker",
            f"all {senders} WAL senders are busy (max_wal_senders)",
            "raise max_wal_senders and restart PostgreSQL",
        )
    else:
        report.add(SOURCE, "wal senders", "ok", f"{senders - active} of {senders} free")


def check_publication(
    conn: psycopg.Connection[Any], source: PostgresSource, tables: list[PgTable], report: Assessment
) -> None:
    """The source creates its publication, or uses one that publishes exactly its tables."""
    published = conn.execute(
        "SELECT schemaname, tablename FROM pg_publication_tables WHERE pubname = %s",
        (source.publication,),
    ).fetchall()
    if published and set(published) == {(t.schema, t.name) for t in tables}:
        report.add(SOURCE, "publication", "ok", f"{source.publication} publishes the tables")
        return
    superuser, can_create = _one(
        conn,
        "SELECT rolsuper, has_database_privilege(current_database(), 'CREATE')"
        " FROM pg_roles WHERE rolname = current_user",
    )
    not_owned = [
        t.qualified
        for t in tables
        if not _one(
            conn,
            "SELECT pg_has_role(relowner, 'USAGE') FROM pg_class WHERE oid = %s",
            (t.oid,),
        )
    ]
    if superuser or (can_create and not not_owned):
        report.add(SOURCE, "publication", "ok", f"the source user can create {source.publication}")
        return
    names = ", ".join(sql.Identifier(t.schema, t.name).as_string(None) for t in tables)
    publication = sql.Identifier(source.publication).as_string(None)
    reason = (
        "no CREATE on the database" if not can_create else f"does not own {', '.join(not_owned)}"
    )
    report.add(
        SOURCE,
        "publication",
        "blocker",
        f"the source user cannot create publication {source.publication}: {reason}",
        f"as the tables' owner: CREATE PUBLICATION {publication}"
        f" FOR TABLE {names} (cdc then uses it as it is)",
    )


def table_facts(
    conn: psycopg.Connection[Any], table: PgTable, definition: TableDef, report: Assessment
) -> TableFacts:
    facts = TableFacts(table.qualified, "")
    scope = f"table {table.qualified}"
    name = sql.Identifier(table.schema, table.name)
    problem = identity_problem(table)
    if problem is not None:
        report.add(scope, "key", "blocker", problem.message, problem.remedy)
    elif table.keyless:
        fix = f"ALTER TABLE {name.as_string(None)} ADD PRIMARY KEY (...)"
        report.add(scope, "key", "warning", keyless_cost(definition), fix)
    facts.key = (
        f"primary key ({', '.join(table.primary_key)})"
        if table.primary_key
        else _IDENTITY.get(table.replica_identity, "none")
    )
    readable = _one(conn, "SELECT has_table_privilege(%s, 'SELECT')", (table.oid,))
    if not readable:
        user = _one(conn, "SELECT current_user")
        report.add(
            scope,
            "select privilege",
            "blocker",
            f"the source user {user} may not read {table.qualified}",
            f"GRANT SELECT ON {name.as_string(None)} TO {sql.Identifier(user).as_string(None)}",
        )
    size, estimate = _one(
        conn,
        "SELECT pg_total_relation_size(%s), reltuples::bigint FROM pg_class WHERE oid = %s",
        (table.oid, table.oid),
    )
    facts.size_bytes = int(size)
    facts.rows = int(estimate) if estimate >= 0 else None
    if readable and (estimate < 0 or size <= EXACT_COUNT_BYTES):
        facts.rows = int(
            _one(conn, sql.SQL("SELECT count(*) FROM {}").format(name).as_string(None))
        )
        facts.rows_exact = True
    if readable:
        facts.sample_rows, facts.sample_seconds = _sample(conn, name)
    if definition.identity:
        facts.features.append(
            f"identity/serial columns {', '.join(sorted(definition.identity))}: their sequences"
            " are not streamed; cutover sets them above the source's values"
        )
    for column in definition.generated:
        facts.features.append(
            f"generated column {column.name} is not streamed: the target computes it"
            " (PostgreSQL) or it is left out (MySQL)"
        )
    return facts


def _sample(conn: psycopg.Connection[Any], name: sql.Identifier) -> tuple[int, float]:
    """Rows read and seconds taken by COPY, as the snapshot reads, of the first rows."""
    query = sql.SQL("COPY (SELECT * FROM {} LIMIT {}) TO STDOUT").format(
        name, sql.Literal(SAMPLE_ROWS)
    )
    rows = 0
    started = time.monotonic()
    with conn.cursor() as cur, cur.copy(query) as copy:
        for block in copy:
            rows += bytes(block).count(b"\n")  # newlines inside values are escaped
    return rows, time.monotonic() - started
