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
SLOT_LIMIT_MB = 64


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
    for every slot: before each step the running sources' slots must be well inside
    it (a slot decoding a long transaction keeps its restart_lsn at that transaction's
    start until it is through), so that only the stopped source's slot falls behind."""
    with (
        psycopg.connect(admin_dsn, autocommit=True) as admin,
        psycopg.connect(source.dsn, autocommit=True) as db,
    ):
        _others_within(admin, slot, "pg_current_wal_lsn() - restart_lsn < %s")
        admin.execute(f"ALTER SYSTEM SET max_slot_wal_keep_size = '{SLOT_LIMIT_MB}MB'")
        admin.execute("SELECT pg_reload_conf()")
        try:
            for _ in range(40):
                # a WAL segment switch adds at most one segment before the checkpoint
                _others_within(admin, slot, "safe_wal_size >= %s")
                db.execute("INSERT INTO chaos_filler (pad) VALUES ('x')")
                db.execute("SELECT pg_switch_wal()")
                admin.execute("CHECKPOINT")
                state = admin.execute(
                    "SELECT wal_status FROM pg_replication_slots WHERE slot_name = %s", (slot,)
                ).fetchone()
                if state is None or state[0] == "lost":
                    return
            raise AssertionError(f"slot {slot} was never invalidated")
        finally:
            admin.execute("ALTER SYSTEM RESET max_slot_wal_keep_size")
            admin.execute("SELECT pg_reload_conf()")


def _others_within(admin: psycopg.Connection[Any], slot: str, condition: str) -> None:
    """Until every other active slot meets `condition` (of half the limit, in bytes).
    Going on without them would invalidate a running source's slot too: the run would
    fail on the nemesis's own collateral, not on cdc. Their restart_lsn moves at the
    running-transactions records PostgreSQL logs every 15 s and at each checkpoint."""
    deadline = time.monotonic() + 120
    half = SLOT_LIMIT_MB * 1024 * 1024 // 2
    while True:
        behind = admin.execute(
            "SELECT string_agg(slot_name, ', ') FROM pg_replication_slots"
            f" WHERE slot_name <> %s AND active AND NOT ({condition})",
            (slot, half),
        ).fetchone()
        if behind is None or behind[0] is None:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"running slots {behind[0]} stayed behind for 120 s")
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
