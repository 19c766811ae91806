"""One source per pipeline: a second `cdc run --role source` of the same pipeline
stops at once with one clear error, and can start once the first is gone, even
after a kill -9."""

from __future__ import annotations

import subprocess
from pathlib import Path
from urllib.parse import urlsplit

import psycopg

from tests.integration.conftest import mysql_connect
from tests.integration.daemon_process import DaemonProcess, logged, wait_until, write_pg_config
from tests.integration.mysql_support import write_mysql_config


def _second_is_refused(config: Path, tmp_path: Path, *expected: str) -> None:
    """A second source exits 1 within a minute, with one error line saying why and what to do."""
    second = DaemonProcess(config, tmp_path / "second.log")
    try:
        second.proc.wait(60)
    except subprocess.TimeoutExpired:
        second.kill9()
        raise AssertionError(f"the second source kept running:\n{second.log_tail()}") from None
    assert second.proc.returncode == 1, second.log_tail()
    errors = [e for e in second.log_events() if e["level"] == "error"]
    assert len(errors) == 1, errors
    text = f"{errors[0]['error']} {errors[0]['fix']}"
    for words in expected:
        assert words in text, text
    assert not logged(second, "streaming_started")


def _takes_over(config: Path, tmp_path: Path, first: DaemonProcess) -> None:
    """kill -9 of the first: a new source then streams."""
    first.kill9()
    third = DaemonProcess(config, tmp_path / "third.log")
    try:
        wait_until(lambda: logged(third, "streaming_started"), 90, "the new source", third)
    finally:
        assert third.stop() == 0, third.log_tail()


def test_second_mysql_source_is_refused_until_the_first_dies(
    tmp_path: Path, mysql_dsn: str, kafka_bootstrap: str, topic_prefix: str
) -> None:
    database = urlsplit(mysql_dsn).path.strip("/")
    with mysql_connect(mysql_dsn) as conn, conn.cursor() as cur:
        cur.execute("CREATE TABLE t (id INT PRIMARY KEY, v INT)")
        cur.execute("INSERT INTO t VALUES (1, 1), (2, 2)")
    config = write_mysql_config(
        tmp_path / "p.yaml", topic_prefix, mysql_dsn, kafka_bootstrap, [f"{database}.t"]
    )
    first = DaemonProcess(config, tmp_path / "first.log")
    try:
        wait_until(lambda: logged(first, "streaming_started"), 90, "the first source", first)
        _second_is_refused(
            config, tmp_path, f"another source of pipeline '{topic_prefix}' is running", "stop"
        )
        first.assert_alive()  # the refused one did not disturb it
        _takes_over(config, tmp_path, first)
    finally:
        first.stop()


def test_second_postgres_source_is_refused_until_the_first_dies(
    tmp_path: Path, pg_dsn: str, kafka_bootstrap: str, topic_prefix: str
) -> None:
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE t (id int PRIMARY KEY, v int)")
        conn.execute("INSERT INTO t VALUES (1, 1), (2, 2)")
    config = write_pg_config(
        tmp_path / "p.yaml", topic_prefix, pg_dsn, kafka_bootstrap, ["public.t"]
    )
    first = DaemonProcess(config, tmp_path / "first.log")
    try:
        wait_until(lambda: logged(first, "streaming_started"), 90, "the first source", first)
        _second_is_refused(
            config, tmp_path, f"replication slot '{topic_prefix}' is in use", "stop the other"
        )
        first.assert_alive()
        _takes_over(config, tmp_path, first)
    finally:
        first.stop()
