"""The reverse pipeline's start and end on a PostgreSQL database (the new side
of a cut-over): its publication and slot, made before the new side takes
writes and dropped once a rollback no longer needs them."""

from __future__ import annotations

from typing import Any

import psycopg
import psycopg.errors
from psycopg import sql

from cdc.postgres.catalog import select_tables
from cdc.postgres.setup import ensure_publication
from cdc.postgres.source import SLOT_KEY
from cdc.settings import PostgresSource
from cdc.source_offsets import OffsetStore


def start(conn: psycopg.Connection[Any], source: PostgresSource, store: OffsetStore) -> str:
    ensure_publication(conn, source.publication, select_tables(conn, source.selects))
    exists = conn.execute(
        "SELECT 1 FROM pg_replication_slots WHERE slot_name = %s", (source.slot_name,)
    ).fetchone()
    if exists:
        return f"slot {source.slot_name} exists"
    row = conn.execute(
        "SELECT lsn::text FROM pg_create_logical_replication_slot(%s, 'pgoutput')",
        (source.slot_name,),
    ).fetchone()
    assert row is not None
    # as the source records a slot it created: should it vanish, the source stops
    store.put(SLOT_KEY, {"slot": source.slot_name, "lsn": row[0]})
    return f"slot {source.slot_name} created at {row[0]}"


def retire(
    conn: psycopg.Connection[Any], source: PostgresSource, pipeline: str, path: str
) -> tuple[bool, str]:
    """The slot would keep WAL here for ever: drop it and the publication, unless the
    reverse pipeline still reads it."""
    slot = source.slot_name
    still_read = (
        f"the reverse pipeline {pipeline} still reads its slot {slot} on the target,"
        f" which keeps WAL there while it exists: stop it (cdc run -c {path}) and run"
        " `cdc rollback` again to drop the slot"
    )
    row = conn.execute(
        "SELECT active FROM pg_replication_slots WHERE slot_name = %s", (slot,)
    ).fetchone()
    if row is not None and row[0]:
        return False, still_read
    try:
        if row is not None:
            conn.execute("SELECT pg_drop_replication_slot(%s)", (slot,))
    except psycopg.errors.ObjectInUse:  # it started reading a moment ago
        return False, still_read
    conn.execute(
        sql.SQL("DROP PUBLICATION IF EXISTS {}").format(sql.Identifier(source.publication))
    )
    return True, (
        f"the reverse pipeline's slot {slot} and publication {source.publication}"
        " dropped on the target"
    )
