"""A table listed in `source.tables` that the source does not have, on the real
servers: `cdc run` stops at start naming it and the closest tables, `cdc assess`
reports it as a blocker; nothing streams silently without it."""

from __future__ import annotations

import json
from pathlib import Path

import psycopg
import pytest
from click.testing import CliRunner

from cdc.cli import main
from tests.integration.conftest import mysql_connect
from tests.integration.daemon_process import DaemonProcess, wait_until
from tests.integration.pipeline import pipeline


def _tables(engine: str, dsn: str) -> tuple[dict[str, str], list[str]]:
    """Create the source's tables; its section with a misspelled list, and the names."""
    if engine == "postgres":
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("CREATE TABLE orders (id int PRIMARY KEY)")
            conn.execute("CREATE TABLE customers (id int PRIMARY KEY)")
        return {"type": "postgres", "dsn": dsn}, ["public.orders", "public.ordres"]
    database = dsn.rsplit("/", 1)[1]
    with mysql_connect(dsn) as conn, conn.cursor() as cur:
        cur.execute("CREATE TABLE orders (id INT PRIMARY KEY)")
        cur.execute("CREATE TABLE customers (id INT PRIMARY KEY)")
    return {"type": "mysql", "dsn": dsn}, [f"{database}.orders", f"{database}.ordres"]


@pytest.mark.parametrize("engine", ["postgres", "mysql"])
def test_a_misspelled_table_stops_the_start_and_blocks_assess(
    tmp_path: Path,
    engine: str,
    pg_dsn: str,
    mysql_dsn: str,
    kafka_bootstrap: str,
    unique_name: str,
) -> None:
    source, tables = _tables(engine, pg_dsn if engine == "postgres" else mysql_dsn)
    typo, right = tables[1], tables[0]
    pipeline(tmp_path, unique_name, {**source, "tables": tables}, kafka_bootstrap)
    config = tmp_path / f"{unique_name}.yaml"

    daemon = DaemonProcess(config, tmp_path / "cdc.log")
    try:
        wait_until(lambda: not daemon.alive(), timeout=60, what="cdc run to stop")
    finally:
        code = daemon.stop()
    assert code == 1
    stopped = [e for e in daemon.log_events() if e.get("event") == "stopped"]
    assert len(stopped) == 1, daemon.log_tail()
    assert f"{typo} (closest: {right}" in stopped[0]["error"]
    assert "source.tables" in stopped[0]["fix"]

    result = CliRunner().invoke(main, ["assess", "-c", str(config), "--json"])
    report = json.loads(result.stdout)
    assert result.exit_code == 1
    found = [c for c in report["checks"] if c["status"] == "blocker"]
    assert [(c["scope"], c["name"]) for c in found] == [("source", "tables")]
    assert typo in found[0]["detail"] and right in found[0]["detail"]
