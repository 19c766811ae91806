"""The sources' positions on their servers: read a slot's confirmed position,
settle a lost COMMIT by its marker, and make a server drop a stopped source's
position (a slot past `max_slot_wal_keep_size`, purged binlogs)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import psycopg

from cdc.postgres.copy_protocol import str_to_lsn
from tests.chaos.databases import Database
from tests.integration.conftest import mysql_connect

# small enough to pass in a few WAL segment switches, far above what a running source lags
SLOT_LIMIT = "64MB"


def confirmed(admin_dsn: str, slots: Sequence[str]) -> dict[str, int]:
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT slot_name, confirmed_flush_lsn::text FROM pg_replication_slots"
            " WHERE slot_name = ANY(%s) AND confirmed_flush_lsn IS NOT NULL",
            (list(slots),),
        ).fetchall()
    return {str(name): str_to_lsn(lsn) for name, lsn in rows}


def marked(db: Database, marker: int) -> bool:
    """Whether the transaction that wrote `marker` into chaos_marks committed."""
    conn = db.connect_retrying(autocommit=True)
    try:
        cur = conn.cursor()
        cur.execute("SELECT 1 FROM chaos_marks WHERE tx = %s", (marker,))
        return cur.fetchone() is not None
    finally:
        conn.close()


def invalidate_slot(admin_dsn: str, source: Database, slot: str) -> None:
    """Push WAL past the slot's limit until PostgreSQL marks it lost. The limit holds
    for every slot: after each step the running sources' slots are given time to move
    their restart_lsn on (at the checkpoint's running-transactions record), so that
    only the stopped source's slot falls behind."""
    with (
        psycopg.connect(admin_dsn, autocommit=True) as admin,
        psycopg.connect(source.dsn, autocommit=True) as db,
    ):
        admin.execute(f"ALTER SYSTEM SET max_slot_wal_keep_size = '{SLOT_LIMIT}'")
        admin.execute("SELECT pg_reload_conf()")
        try:
            for _ in range(40):
                db.execute("INSERT INTO chaos_filler (pad) VALUES ('x')")
                row = db.execute("SELECT pg_switch_wal()::text").fetchone()
                assert row is not None
                admin.execute("CHECKPOINT")
                _others_follow(admin, slot, str_to_lsn(row[0]))
                state = admin.execute(
                    "SELECT wal_status FROM pg_replication_slots WHERE slot_name = %s", (slot,)
                ).fetchone()
                if state is None or state[0] == "lost":
                    return
            raise AssertionError(f"slot {slot} was never invalidated")
        finally:
            admin.execute("ALTER SYSTEM RESET max_slot_wal_keep_size")
            admin.execute("SELECT pg_reload_conf()")


def _others_follow(admin: psycopg.Connection[Any], slot: str, lsn: int) -> None:
    """Until every other active slot's restart_lsn passed `lsn`. Going on without them
    would invalidate a running source's slot too: the run would then fail on the
    nemesis's own collateral, not on cdc."""
    deadline = time.monotonic() + 120
    while True:
        behind = admin.execute(
            "SELECT string_agg(slot_name, ', ') FROM pg_replication_slots"
            " WHERE slot_name <> %s AND active AND restart_lsn < %s::pg_lsn",
            (slot, f"{lsn >> 32:X}/{lsn & 0xFFFFFFFF:X}"),
        ).fetchone()
        if behind is None or behind[0] is None:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"running slots {behind[0]} did not pass {lsn:X} in 120 s")
        time.sleep(0.2)


def purge_binlogs(admin_dsn: str) -> None:
    """Start two new binlog files and purge every older one."""
    with mysql_connect(admin_dsn) as conn, conn.cursor() as cur:
        cur.execute("FLUSH BINARY LOGS")
        cur.execute("FLUSH BINARY LOGS")
        cur.execute("SHOW MASTER STATUS")
        row = cur.fetchone()
        assert row is not None
        newest = str(row[0])
        deadline = time.monotonic() + 60
        while True:
            cur.execute(f"PURGE BINARY LOGS TO '{newest}'")
            cur.execute("SHOW BINARY LOGS")
            if [str(r[0]) for r in cur.fetchall()] == [newest]:
                return
            if time.monotonic() > deadline:
                raise AssertionError("binlogs older than the newest were not purged")
            time.sleep(0.5)  # a reader still holds an old file
