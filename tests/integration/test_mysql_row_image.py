"""Partial row images (`binlog_row_image` MINIMAL or NOBLOB in the session that
wrote them) on the real server: an update or delete applies exactly what it
carries. An insert, whose left-out columns hold defaults only MariaDB knows,
stops the source: tests/integration/test_bad_input.py."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

from tests.integration.conftest import mysql_connect
from tests.integration.convergence import mysql_digest, pg_digest, wait_equal
from tests.integration.pipeline import mysql_pipeline, running

COLUMNS = ["id", "a", "b"]
TABLE = "CREATE TABLE m (id INT PRIMARY KEY, a VARCHAR(10), b INT)"


def _write_minimal(dsn: str, *statements: str) -> None:
    with mysql_connect(dsn) as conn, conn.cursor() as cur:
        cur.execute("SET SESSION binlog_row_image = MINIMAL")
        for statement in statements:
            cur.execute(statement)


def test_minimal_updates_and_deletes_apply_what_they_carry(
    tmp_path: Path, mysql_dsn: str, pg_target_dsn: str, kafka_bootstrap: str, topic_prefix: str
) -> None:
    database = urlsplit(mysql_dsn).path.strip("/")
    with mysql_connect(mysql_dsn) as conn, conn.cursor() as cur:
        cur.execute(TABLE)
        cur.execute("INSERT INTO m VALUES (1, 'one', 1), (2, 'two', 2), (3, 'three', 3)")
    settings = mysql_pipeline(
        tmp_path,
        topic_prefix,
        mysql_dsn,
        kafka_bootstrap,
        [f"{database}.m"],
        target={"type": "postgres", "dsn": pg_target_dsn, "create_tables": True},
    )
    name = f"{database}.m"
    with running(settings, "all"):
        wait_equal(
            lambda: mysql_digest(mysql_dsn, name, COLUMNS),
            lambda: pg_digest(pg_target_dsn, name, COLUMNS),
            timeout=90,
        )
        _write_minimal(
            mysql_dsn,
            "UPDATE m SET b = 10 WHERE id = 1",  # a keeps 'one' on the target
            "UPDATE m SET a = NULL WHERE id = 2",
            "DELETE FROM m WHERE id = 3",
        )
        rows, _ = wait_equal(
            lambda: mysql_digest(mysql_dsn, name, COLUMNS),
            lambda: pg_digest(pg_target_dsn, name, COLUMNS),
            timeout=60,
        )
    assert rows == 2
