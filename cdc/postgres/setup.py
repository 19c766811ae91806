"""Checks before start, and the publication and slot the source reads from."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import psycopg
from psycopg import sql

from cdc.errors import TerminalError
from cdc.postgres.catalog import PgTable


def check_server(conn: psycopg.Connection[Any]) -> None:
    problems = server_problems(conn)
    if problems:
        raise problems[0]


def server_problems(conn: psycopg.Connection[Any]) -> list[TerminalError]:
    """Every reason the server cannot be a source (`cdc assess` lists them all)."""
    problems = []
    row = conn.execute(
        "SELECT current_setting('wal_level'), current_setting('server_encoding'),"
        " r.rolreplication OR r.rolsuper"
        " FROM pg_roles r WHERE r.rolname = current_user"
    ).fetchone()
    assert row is not None
    wal_level, encoding, can_replicate = row
    if wal_level != "logical":
        problems.append(
            TerminalError(
                f"wal_level is {wal_level!r}; logical decoding needs 'logical'",
                "ALTER SYSTEM SET wal_level = logical; then restart PostgreSQL",
            )
        )
    if encoding != "UTF8":
        problems.append(
            TerminalError(
                f"server_encoding is {encoding!r}; cdc reads UTF8 databases",
                "migrate from a UTF8 database (CREATE DATABASE ... ENCODING 'UTF8')",
            )
        )
    if not can_replicate:
        problems.append(
            TerminalError(
                "the source user has no REPLICATION privilege",
                "ALTER ROLE <user> REPLICATION (and grant SELECT on the tables)",
            )
        )
    return problems


def check_tables(tables: Sequence[PgTable]) -> None:
    if not tables:
        raise TerminalError(
            "no table of the source matches source.tables",
            "list tables as schema.table, or check the include/exclude patterns",
        )
    for table in tables:
        problem = identity_problem(table)
        if problem is not None:
            raise problem


def identity_problem(table: PgTable) -> TerminalError | None:
    """Why the table's updates and deletes could not be identified, if they could not."""
    if table.primary_key or table.replica_identity == "f":
        return None
    name = sql.Identifier(table.schema, table.name).as_string(None)
    if table.replica_identity == "i":
        # the stream would key its rows by the index, the catalog by every column
        return TerminalError(
            f"table {table.qualified} has no primary key, only a replica identity index,"
            " which cdc cannot key the target table by",
            f"add a primary key to it (or ALTER TABLE {name} REPLICA IDENTITY FULL)",
        )
    return TerminalError(
        f"table {table.qualified} has no primary key, so its updates and deletes"
        " cannot be identified",
        f"ALTER TABLE {name} REPLICA IDENTITY FULL (or add a primary key)",
    )


def ensure_publication(
    conn: psycopg.Connection[Any], publication: str, tables: Sequence[PgTable]
) -> None:
    """Create the publication, or make it publish exactly the configured tables.

    A publication that already publishes exactly those tables is left alone: it
    may belong to the tables' owner (least privilege: the source role then needs
    neither CREATE on the database nor ownership of the tables)."""
    names = sql.SQL(", ").join(sql.Identifier(t.schema, t.name) for t in tables)
    exists = conn.execute(
        "SELECT 1 FROM pg_publication WHERE pubname = %s", (publication,)
    ).fetchone()
    if exists:
        published = conn.execute(
            "SELECT schemaname, tablename FROM pg_publication_tables WHERE pubname = %s",
            (publication,),
        ).fetchall()
        if set(published) == {(t.schema, t.name) for t in tables}:
            return
    verb = "ALTER PUBLICATION {} SET TABLE {}" if exists else "CREATE PUBLICATION {} FOR TABLE {}"
    conn.execute(sql.SQL(verb).format(sql.Identifier(publication), names))


def slot_state(conn: psycopg.Connection[Any], slot: str) -> tuple[str | None, bool] | None:
    """(wal_status, active) of the slot, or None when there is no such slot."""
    row = conn.execute(
        "SELECT wal_status, active FROM pg_replication_slots WHERE slot_name = %s", (slot,)
    ).fetchone()
    return None if row is None else (row[0], row[1])


class SlotInUseError(TerminalError):
    """Another connection streams from the slot."""


def check_slot(conn: psycopg.Connection[Any], slot: str, created_before: bool) -> bool:
    """True when the slot exists and can be read; False when it must be created."""
    state = slot_state(conn, slot)
    remedy = (
        "take a new snapshot into emptied tables: stop the sink, delete every row of the"
        " pipeline's tables on the target (a snapshot adds and updates rows; rows deleted"
        f" meanwhile would stay), drop the slot (SELECT pg_drop_replication_slot('{slot}'))"
        " if it is still there, delete the pipeline's offsets topic"
        " <topic_prefix>.__offsets (or use a new pipeline name), and start again"
    )
    if state is None:
        if created_before:
            raise TerminalError(
                f"replication slot {slot!r} is gone; the changes since the last"
                " acknowledged position cannot be read any more",
                remedy,
            )
        return False
    wal_status, active = state
    if wal_status == "lost":
        raise TerminalError(
            f"replication slot {slot!r} lost WAL it still needed (wal_status 'lost')", remedy
        )
    if active:
        raise SlotInUseError(
            f"replication slot {slot!r} is in use by another process",
            "stop the other cdc source of this pipeline; only one may run",
        )
    return True
