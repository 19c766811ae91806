"""The bench's Debezium runners on a small change log of each engine.

Each test records where the change log stands, writes 200 single-row
transactions (inserts, updates, deletes) and runs Debezium in Kafka Connect
standalone from that point: Kafka must end up with exactly one message per
change. Kafka Connect and the connectors are installed by dev/connect.sh when
missing (a few minutes on a fresh machine), never skipped.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import psycopg
import pytest

from bench import debezium, kafka_timing
from bench.servers import load_servers
from bench.workloads import Context
from tests.integration.conftest import mysql_connect

INSERTS, UPDATES, DELETES = 150, 30, 20
CHANGES = INSERTS + UPDATES + DELETES
# A connector that misses the range would otherwise wait the bench's full quarter hour.
TIMEOUT_S = 120.0


@pytest.fixture(scope="module", autouse=True)
def connect_installed() -> None:
    debezium.install()


@pytest.fixture
def ctx(tmp_path: Path, unique_name: str, monkeypatch: pytest.MonkeyPatch) -> Context:
    monkeypatch.setattr(kafka_timing, "TIMEOUT_S", TIMEOUT_S)
    return Context(rows=CHANGES, servers=load_servers(), prefix=unique_name, workdir=tmp_path)


def _statements() -> Iterator[tuple[str, tuple[int, ...]]]:
    """CHANGES single-row statements on items (id, v), each its own transaction."""
    for i in range(1, INSERTS + 1):
        yield "INSERT INTO items (id, v) VALUES (%s, %s)", (i, i)
    for i in range(1, UPDATES + 1):
        yield "UPDATE items SET v = v + 1000 WHERE id = %s", (i,)
    for i in range(INSERTS - DELETES + 1, INSERTS + 1):
        yield "DELETE FROM items WHERE id = %s", (i,)


@pytest.fixture
def pg_slot(pg_dsn: str, unique_name: str) -> Iterator[str]:
    """A pgoutput slot on the test's database; dropped after the test."""
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE items (id int PRIMARY KEY, v int NOT NULL)")
        # pgoutput decodes a change only with a publication that existed when it was made.
        conn.execute(f"CREATE PUBLICATION {unique_name} FOR TABLE public.items")
        conn.execute("SELECT pg_create_logical_replication_slot(%s, 'pgoutput')", (unique_name,))
    yield unique_name
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        # The walsender of the stopped worker may take a moment to let go of the slot.
        for _ in range(100):
            active = conn.execute(
                "SELECT active FROM pg_replication_slots WHERE slot_name = %s", (unique_name,)
            ).fetchone()
            if active is None or not active[0]:
                break
            time.sleep(0.1)
        conn.execute(
            "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots"
            " WHERE slot_name = %s",
            (unique_name,),
        )


def test_debezium_postgres_reads_the_slot_into_kafka(
    ctx: Context, pg_dsn: str, pg_slot: str, topic_prefix: str
) -> None:
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        for statement, params in _statements():
            conn.execute(statement.encode(), params)

    m = debezium.run_postgres(
        ctx,
        db=urlsplit(pg_dsn).path.strip("/"),
        table="items",
        slot=pg_slot,
        publication=pg_slot,
        expected=CHANGES,
        name=topic_prefix,
    )

    assert m.rows == CHANGES
    assert m.rows_per_s > 0
    assert m.peak_rss_mb is not None and m.peak_rss_mb > 0


def test_debezium_mysql_reads_mariadb_binlog_from_a_position(
    ctx: Context, mysql_dsn: str, topic_prefix: str
) -> None:
    with mysql_connect(mysql_dsn) as conn, conn.cursor() as cur:
        cur.execute("CREATE TABLE items (id INT PRIMARY KEY, v INT NOT NULL)")
        cur.execute("SHOW MASTER STATUS")
        row = cur.fetchone()
        assert row is not None
        start = (str(row[0]), int(row[1]))
        for statement, params in _statements():
            cur.execute(statement, params)

    m = debezium.run_mysql(
        ctx,
        db=urlsplit(mysql_dsn).path.strip("/"),
        table="items",
        start=start,
        expected=CHANGES,
        name=topic_prefix,
    )

    assert m.rows == CHANGES
    assert m.rows_per_s > 0
    assert m.peak_rss_mb is not None and m.peak_rss_mb > 0
