"""Pipelines run with exactly the grants README.md lists ("Least-privilege roles"):
snapshot and stream, PostgreSQL and MariaDB to PostgreSQL, end equal."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

from cdc.settings import Settings
from tests.integration.conftest import my_execute, mysql_connect, pg_execute
from tests.integration.convergence import Digest, mysql_digest, pg_digest, wait_equal
from tests.integration.pipeline import mysql_pipeline, pg_pipeline, running
from tests.integration.roles import (
    mysql_source_user,
    mysql_target_user,
    pg_source_role,
    pg_target_role,
)

COLUMNS = ["id", "counter", "note"]
ITEMS = "CREATE TABLE items (id int PRIMARY KEY, counter int NOT NULL, note text)"
PG_SEED = "INSERT INTO items SELECT i, 0, 'seed' FROM generate_series(1, 500) i"
CHANGES = [
    "UPDATE items SET counter = counter + 1 WHERE id % 3 = 0",
    "DELETE FROM items WHERE id % 7 = 0",
    "INSERT INTO items VALUES (1000, 1, 'streamed')",
]


def assert_copied_then_streamed(
    settings: Settings,
    source: Callable[[], Digest | None],
    target: Callable[[], Digest | None],
    execute: Callable[[str], None],
) -> None:
    """The 500 seeded rows arrive, then the CHANGES made on the source (`execute`)."""
    with running(settings, "all"):
        wait_equal(source, target, timeout=90)
        for statement in CHANGES:
            execute(statement)
        rows, _ = wait_equal(source, target, timeout=60)
    assert rows == 500 - 500 // 7 + 1


def test_postgres_to_postgres_with_least_privilege(
    tmp_path: Path, pg_dsn: str, pg_target_dsn: str, kafka_bootstrap: str, topic_prefix: str
) -> None:
    for dsn in (pg_dsn, pg_target_dsn):
        pg_execute(dsn, ITEMS)
    pg_execute(pg_dsn, PG_SEED)
    with (
        pg_source_role(pg_dsn, ["public.items"], topic_prefix) as source_dsn,
        pg_target_role(pg_target_dsn, ["public.items"]) as target_dsn,
    ):
        settings = pg_pipeline(
            tmp_path,
            topic_prefix,
            source_dsn,
            kafka_bootstrap,
            ["public.items"],
            # the table's owner made the target table: the sink only changes its rows
            target={"type": "postgres", "dsn": target_dsn},
            heartbeat_interval_s=0.5,  # heartbeats run as the source role too
        )
        assert_copied_then_streamed(
            settings,
            lambda: pg_digest(pg_dsn, "public.items", COLUMNS),
            lambda: pg_digest(pg_target_dsn, "public.items", COLUMNS),
            lambda statement: pg_execute(pg_dsn, statement),
        )


def test_mariadb_to_postgres_with_least_privilege(
    tmp_path: Path, mysql_dsn: str, pg_target_dsn: str, kafka_bootstrap: str, topic_prefix: str
) -> None:
    database = urlsplit(mysql_dsn).path.strip("/")
    with mysql_connect(mysql_dsn) as conn, conn.cursor() as cur:
        cur.execute("CREATE TABLE items (id INT PRIMARY KEY, counter INT NOT NULL, note TEXT)")
        cur.executemany("INSERT INTO items VALUES (%s, 0, 'seed')", [(i,) for i in range(1, 501)])
    with (
        mysql_source_user(mysql_dsn, database) as source_dsn,
        pg_target_role(pg_target_dsn) as target_dsn,
    ):
        settings = mysql_pipeline(
            tmp_path,
            topic_prefix,
            source_dsn,
            kafka_bootstrap,
            [f"{database}.items"],
            # the sink creates the schema and table it needs
            target={"type": "postgres", "dsn": target_dsn, "create_tables": True},
        )
        assert_copied_then_streamed(
            settings,
            lambda: mysql_digest(mysql_dsn, f"{database}.items", COLUMNS),
            lambda: pg_digest(pg_target_dsn, f"{database}.items", COLUMNS),
            lambda statement: my_execute(mysql_dsn, statement),
        )


def test_postgres_to_mariadb_with_least_privilege(
    tmp_path: Path, pg_dsn: str, mysql_dsn: str, kafka_bootstrap: str, topic_prefix: str
) -> None:
    database = urlsplit(mysql_dsn).path.strip("/")
    pg_execute(pg_dsn, ITEMS)
    pg_execute(pg_dsn, PG_SEED)
    with (
        pg_source_role(pg_dsn, ["public.items"], topic_prefix) as source_dsn,
        mysql_target_user(mysql_dsn, database) as target_dsn,
    ):
        settings = pg_pipeline(
            tmp_path,
            topic_prefix,
            source_dsn,
            kafka_bootstrap,
            ["public.items"],
            target={"type": "mysql", "dsn": target_dsn, "create_tables": True},
        )
        assert_copied_then_streamed(
            settings,
            lambda: pg_digest(pg_dsn, "public.items", COLUMNS),
            lambda: mysql_digest(mysql_dsn, f"{database}.items", COLUMNS),
            lambda statement: pg_execute(pg_dsn, statement),
        )
