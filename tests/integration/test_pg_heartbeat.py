"""Heartbeats keep the slot moving while only unpublished tables change, so
the WAL PostgreSQL retains for it stops growing."""

from __future__ import annotations

import time
from pathlib import Path

import psycopg

from tests.integration.daemon_process import (
    DaemonProcess,
    current_lsn,
    logged,
    slot_state,
    wait_confirmed,
    wait_until,
    write_pg_config,
)

WRITE_S = 10
MIN_WAL = 20 * 1024 * 1024


def test_heartbeats_release_wal_of_unpublished_writes(
    tmp_path: Path, pg_dsn: str, kafka_bootstrap: str, unique_name: str, topic_prefix: str
) -> None:
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE published (id integer PRIMARY KEY)")
        conn.execute("CREATE TABLE unpublished (id bigserial PRIMARY KEY, payload text)")
    config = write_pg_config(
        tmp_path / "cdc.yaml",
        unique_name,
        pg_dsn,
        kafka_bootstrap,
        ["public.published"],
        source={"heartbeat_interval_s": 1},
    )
    daemon = DaemonProcess(config, tmp_path / "cdc.log")
    # slot lag in bytes while writing: (behind confirmed_flush_lsn, behind restart_lsn)
    lags: list[tuple[int, int]] = []
    try:
        wait_until(
            lambda: logged(daemon, "streaming_started"),
            60,
            "the source to stream",
            daemon,
        )
        with psycopg.connect(pg_dsn, autocommit=True) as conn:
            start = current_lsn(conn)
            deadline = time.monotonic() + WRITE_S
            next_sample = 0.0
            while time.monotonic() < deadline:
                conn.execute(
                    "INSERT INTO unpublished (payload)"
                    " SELECT repeat(md5(i::text), 6) FROM generate_series(1, 100) AS i"
                )
                now = time.monotonic()
                if now >= next_sample:
                    state, lsn = slot_state(conn, unique_name), current_lsn(conn)
                    lags.append((lsn - state.confirmed_flush, lsn - state.restart))
                    next_sample = now + 0.25
                time.sleep(0.005)
            end = current_lsn(conn)
            written = end - start
            assert written > MIN_WAL, f"the load wrote only {written} bytes of WAL"
            # Nothing of the load reaches the source (pgoutput skips transactions
            # without published changes): only heartbeats can move the slot.
            wait_confirmed(pg_dsn, unique_name, end, 15, daemon)
            # restart_lsn follows at the next running-transactions record, which
            # a checkpoint writes
            conn.execute("CHECKPOINT")
            wait_until(
                lambda: slot_state(conn, unique_name).restart >= end,
                15,
                "restart_lsn to pass the load",
                daemon,
            )
    finally:
        daemon.stop()
    # while the writes went on, the unconfirmed WAL stayed bounded (a few
    # heartbeat intervals of writes), instead of growing with the load
    worst = max(confirmed for confirmed, _ in lags)
    assert worst < written / 2, f"{worst} of {written} bytes of WAL unconfirmed at worst"
    assert len(lags) >= WRITE_S * 2
    print(f"{written / 2**20:.0f} MB of WAL written; at most {worst / 2**20:.1f} MB unconfirmed")
