"""SIGTERM during a write load: `cdc run --role all` drains and exits 0 within
the grace period; restarted, it catches up and the target ends equal to the
source (PostgreSQL and MariaDB to PostgreSQL)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

import psycopg

from tests.integration.conftest import mysql_connect
from tests.integration.convergence import (
    Digest,
    WriteLoad,
    mysql_digest,
    pg_digest,
    wait_equal,
)
from tests.integration.daemon_process import wait_until
from tests.integration.pipeline import mysql_pipeline, pg_pipeline
from tests.integration.sink_support import SinkProcess

GRACE_S = 30  # cdc run's default grace period
COLUMNS = ["id", "counter", "note"]
LOAD_S = 4  # seconds of writes before the stop, and after the restart


def _stop_restart_converge(
    tmp_path: Path,
    config: Path,
    load: WriteLoad,
    source: Callable[[], Digest | None],
    target: Callable[[], Digest | None],
) -> None:
    first = SinkProcess(config, tmp_path / "first.log", role="all")
    load.start()
    try:
        wait_until(lambda: target() is not None, 90, "the sink to create the target table")
        time.sleep(LOAD_S)
        first.assert_alive()
        before = load.writes
        started = time.monotonic()
        code = first.stop(timeout=GRACE_S)  # SIGTERM; kill -9 once the grace period is over
        took = time.monotonic() - started
        assert code == 0, f"exit {code} after SIGTERM:\n{first.log_tail()}"
        assert took < GRACE_S, f"{took:.1f} s to stop"
        events = {e["event"] for e in first.log_events()}
        assert {"shutdown_requested", "source_stopped", "sink_stopped"} <= events, events
        assert load.writes > before, "the load runs on through the stop"
        second = SinkProcess(config, tmp_path / "second.log", role="all")
        try:
            time.sleep(LOAD_S)
            second.assert_alive()
            writes = load.stop()
            rows, _ = wait_equal(source, target, timeout=120)
        finally:
            assert second.stop(timeout=GRACE_S) == 0, second.log_tail()
    finally:
        load.stop()
    assert writes > 1000 and rows > 0, (writes, rows)


def test_sigterm_under_load_then_restart_postgres_to_postgres(
    tmp_path: Path, pg_dsn: str, pg_target_dsn: str, kafka_bootstrap: str, topic_prefix: str
) -> None:
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE items (id int PRIMARY KEY, counter int NOT NULL, note text)")
        conn.execute("INSERT INTO items SELECT i, 0, 'seed' FROM generate_series(1, 200) i")
    pg_pipeline(
        tmp_path,
        topic_prefix,
        pg_dsn,
        kafka_bootstrap,
        ["public.items"],
        target={"type": "postgres", "dsn": pg_target_dsn, "create_tables": True},
    )
    _stop_restart_converge(
        tmp_path,
        tmp_path / f"{topic_prefix}.yaml",
        WriteLoad(pg_dsn, "items", "postgres"),
        lambda: pg_digest(pg_dsn, "public.items", COLUMNS),
        lambda: pg_digest(pg_target_dsn, "public.items", COLUMNS),
    )


def test_sigterm_under_load_then_restart_mariadb_to_postgres(
    tmp_path: Path, mysql_dsn: str, pg_target_dsn: str, kafka_bootstrap: str, topic_prefix: str
) -> None:
    database = urlsplit(mysql_dsn).path.strip("/")
    with mysql_connect(mysql_dsn) as conn, conn.cursor() as cur:
        cur.execute(
            "CREATE TABLE items (id INT PRIMARY KEY, counter INT NOT NULL, note VARCHAR(40))"
        )
        cur.executemany("INSERT INTO items VALUES (%s, 0, 'seed')", [(i,) for i in range(1, 201)])
    mysql_pipeline(
        tmp_path,
        topic_prefix,
        mysql_dsn,
        kafka_bootstrap,
        [f"{database}.items"],
        target={"type": "postgres", "dsn": pg_target_dsn, "create_tables": True},
    )
    _stop_restart_converge(
        tmp_path,
        tmp_path / f"{topic_prefix}.yaml",
        WriteLoad(mysql_dsn, "items", "mysql"),
        lambda: mysql_digest(mysql_dsn, f"{database}.items", COLUMNS),
        lambda: pg_digest(pg_target_dsn, f"{database}.items", COLUMNS),
    )
