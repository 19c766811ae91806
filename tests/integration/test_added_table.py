"""A table added to `source.tables` after the snapshot, on the real servers: the
restarted PostgreSQL source copies it as it joins the stream; the MariaDB source
names it, since its rows from before the restart are not copied."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest

from tests.integration.conftest import mysql_connect
from tests.integration.daemon_process import DaemonProcess, logged, wait_until
from tests.integration.pipeline import pipeline


def _create(engine: str, dsn: str) -> tuple[dict[str, str], str]:
    """Tables `first` and `later` with a row each; the source section and the schema."""
    statements = [
        "CREATE TABLE first (id int PRIMARY KEY)",
        "CREATE TABLE later (id int PRIMARY KEY)",
        "INSERT INTO first VALUES (1)",
        "INSERT INTO later VALUES (1)",
    ]
    if engine == "postgres":
        with psycopg.connect(dsn, autocommit=True) as conn:
            for statement in statements:
                conn.execute(statement.encode())
        return {"type": "postgres", "dsn": dsn}, "public"
    with mysql_connect(dsn) as conn, conn.cursor() as cur:
        for statement in statements:
            cur.execute(statement)
    return {"type": "mysql", "dsn": dsn}, dsn.rsplit("/", 1)[1]


def _run_until(config: Path, log: Path, event: str) -> DaemonProcess:
    daemon = DaemonProcess(config, log)
    try:
        wait_until(lambda: logged(daemon, event), timeout=90, what=event, daemon=daemon)
    finally:
        assert daemon.stop() == 0, daemon.log_tail()
    return daemon


@pytest.mark.parametrize("engine", ["postgres", "mysql"])
def test_a_table_added_after_the_snapshot_is_named_at_start(
    tmp_path: Path,
    engine: str,
    pg_dsn: str,
    mysql_dsn: str,
    kafka_bootstrap: str,
    unique_name: str,
) -> None:
    source, schema = _create(engine, pg_dsn if engine == "postgres" else mysql_dsn)
    config = tmp_path / f"{unique_name}.yaml"
    pipeline(tmp_path, unique_name, {**source, "tables": [f"{schema}.first"]}, kafka_bootstrap)
    first = _run_until(config, tmp_path / "first.log", "snapshot_complete")
    assert not logged(first, "table_added_without_snapshot")

    tables = [f"{schema}.first", f"{schema}.later"]
    pipeline(tmp_path, unique_name, {**source, "tables": tables}, kafka_bootstrap)
    if engine == "postgres":
        # PostgreSQL copies it as it joins the stream, and it counts as captured
        second = _run_until(config, tmp_path / "second.log", "table_copied")
        copied = [e for e in second.log_events() if e.get("event") == "table_copied"]
        assert [(e["table"], e["rows"]) for e in copied] == [(f"{schema}.later", 1)]
        assert not logged(second, "table_added_without_snapshot")
        third = _run_until(config, tmp_path / "third.log", "streaming_started")
        assert not logged(third, "table_copied")
        return
    second = _run_until(config, tmp_path / "second.log", "streaming_started")
    named = [e for e in second.log_events() if e.get("event") == "table_added_without_snapshot"]
    assert [e["table"] for e in named] == [f"{schema}.later"]
    assert "cdc verify" in named[0]["fix"]

    third = _run_until(config, tmp_path / "third.log", "streaming_started")
    assert not logged(third, "table_added_without_snapshot")
