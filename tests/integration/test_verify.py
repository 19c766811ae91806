"""`cdc verify` on tables copied by a real pipeline: equal, then edited by hand on the
target, and under a live write load with a lagging sink."""

from __future__ import annotations

import json
import random
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import psycopg
import pymysql
import pytest
from confluent_kafka import Consumer

from cdc.app.engines import engine_for
from cdc.kafka import offsets
from cdc.migrate.verify.record import last_verify
from cdc.migrate.verify.run import verify
from cdc.settings import Settings
from cdc.topics import offsets_topic
from tests.integration.conftest import mysql_connect, pg_execute
from tests.integration.pipeline import (
    cdc,
    mysql_pipeline,
    pg_pipeline,
    running,
    topic_exists,
    wait_until,
)

PG_TABLE = """
CREATE TABLE items (
    id int PRIMARY KEY, amount numeric(14,4), ratio float8, seen timestamp(6),
    stamped timestamptz, doc jsonb, data bytea, note text, flag boolean, day date
)
"""
PG_NAMES = "CREATE TABLE names (name text PRIMARY KEY, n int)"
MYSQL_TABLES = [
    # floats and JSON: hashed in Python
    """CREATE TABLE items (id INT PRIMARY KEY, amount DECIMAL(14,4), ratio DOUBLE,
       seen DATETIME(6), stamped TIMESTAMP(6) NULL, doc JSON, data BLOB, note TEXT,
       flag TINYINT(1), day DATE, tags SET('x','y','z'), took TIME(6)) CHARSET utf8mb4""",
    # only types both engines can write alike: hashed in the databases
    """CREATE TABLE plain (id BIGINT PRIMARY KEY, amount DECIMAL(12,2), seen DATETIME(6),
       stamped TIMESTAMP(6) NULL, data VARBINARY(64), note VARCHAR(100), day DATE)
       CHARSET utf8mb4""",
]
ROWS = 1200
NOTES = ["plain", "ünïcødé ✓", "emoji 🚀", "tab\there", "", None]


def item(i: int) -> tuple[Any, ...]:
    """Mixed values, a NULL in every column now and then."""
    if i % 97 == 0:
        return (i, None, None, None, None, None, None, None, None, None)
    return (
        i,
        f"{i * 7 % 1000}.{i % 10}0",
        i / 3,
        f"2024-0{i % 9 + 1}-1{i % 9} 12:{i % 60:02}:0{i % 10}.{i:06}",
        f"2024-05-01 10:00:{i % 60:02}.5+00:00",
        json.dumps({"z": i, "a": [1, "x"], "n": {"k": None}}),
        bytes([i % 256, 0, 255]),
        NOTES[i % len(NOTES)],
        i % 2 == 0,
        f"2023-12-{i % 28 + 1:02}",
    )


def pg_source(pg_dsn: str) -> None:
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute(PG_TABLE)
        conn.execute(PG_NAMES)
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO items VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                [item(i) for i in range(1, ROWS + 1)],
            )
            # text keys whose order differs between collations
            names = ["a", "B", "b", "Ä", "z", "Z", "é", "e", "10", "9", "ß", "ss", "🚀"]
            cur.executemany(
                "INSERT INTO names VALUES (%s, %s)", [(n, i) for i, n in enumerate(names)]
            )


def pg_settings(
    tmp_path: Path, name: str, pg_dsn: str, target_dsn: str, bootstrap: str
) -> Settings:
    return pg_pipeline(
        tmp_path,
        name,
        pg_dsn,
        bootstrap,
        ["public.items", "public.names"],
        target={"type": "postgres", "dsn": target_dsn, "create_tables": True},
        heartbeat_interval_s=0.5,
    )


def count(dsn: str, table: str) -> int:
    with psycopg.connect(dsn) as conn:
        try:
            row = conn.execute(f"SELECT count(*) FROM {table}").fetchone()
        except psycopg.errors.UndefinedTable:
            return -1
    return row[0] if row else -1


def cli(config: Path, *args: str) -> tuple[int, str]:
    """`cdc verify` as a user runs it: exit status and stdout."""
    done = cdc("verify", "-c", str(config), *args)
    return done.returncode, done.stdout


def test_pg_to_pg_equal_then_edited_by_hand(
    tmp_path: Path, pg_dsn: str, pg_target_dsn: str, kafka_bootstrap: str, topic_prefix: str
) -> None:
    pg_source(pg_dsn)
    settings = pg_settings(tmp_path, topic_prefix, pg_dsn, pg_target_dsn, kafka_bootstrap)
    config = tmp_path / f"{topic_prefix}.yaml"
    with running(settings, "all"):
        assert wait_until(lambda: count(pg_target_dsn, "public.items") == ROWS, timeout=120)
        assert wait_until(lambda: count(pg_target_dsn, "public.names") == 13, timeout=60)

        code, out = cli(config, "--json", "--chunk-rows", "100")
        report = json.loads(out)
        assert code == 0, out
        assert report["equal"] is True
        items = {t["table"]: t for t in report["tables"]}["public.items"]
        assert (items["status"], items["rows"], items["hashing"]) == ("equal", ROWS, "database")
        assert items["chunks"] >= 12
        recorded = last_verify(settings.name, engine_for(settings.target))
        assert recorded is not None and recorded[1] is True

        with psycopg.connect(pg_target_dsn, autocommit=True) as conn:
            conn.execute("UPDATE items SET note = 'edited by hand' WHERE id = 500")
            conn.execute("DELETE FROM items WHERE id = 700")
            conn.execute("INSERT INTO items (id, note) VALUES (5000, 'extra')")
            conn.execute("UPDATE names SET n = 99 WHERE name = 'Ä'")

        code, out = cli(config, "--chunk-rows", "100")
        assert code == 1, out
        assert '{"id": 500}' in out and "different" in out

        report_obj = verify(settings, engine_for, ["public.items", "public.names"], chunk_rows=100)
    assert not report_obj.equal and report_obj.exit_code == 1
    items_result, names_result = report_obj.tables
    assert items_result.keys == {
        "missing": [{"id": 700}],
        "extra": [{"id": 5000}],
        "differing": [{"id": 500}],
    }
    assert not items_result.unconfirmed
    assert names_result.keys == {"differing": [{"name": "Ä"}]}
    found = last_verify(settings.name, engine_for(settings.target))
    assert found is not None and found[1] is False


def test_pg_to_pg_transforms(
    tmp_path: Path, pg_dsn: str, pg_target_dsn: str, kafka_bootstrap: str, topic_prefix: str
) -> None:
    """Renamed tables and columns still verify; a masked table is not verifiable."""
    pg_source(pg_dsn)
    settings = pg_pipeline(
        tmp_path,
        topic_prefix,
        pg_dsn,
        kafka_bootstrap,
        ["public.items", "public.names"],
        target={"type": "postgres", "dsn": pg_target_dsn, "create_tables": True},
        transforms=[
            {"type": "rename_table", "table": "public.items", "to": "copied"},
            {"type": "rename_column", "table": "public.items", "from": "note", "to": "remark"},
            {"type": "columns", "table": "public.items", "exclude": ["ratio"]},
            {"type": "mask", "table": "public.names", "column": "n", "with": "null"},
        ],
        heartbeat_interval_s=0.5,
    )
    with running(settings, "all"):
        assert wait_until(lambda: count(pg_target_dsn, "public.copied") == ROWS, timeout=120)
        report = verify(settings, engine_for, chunk_rows=500)
        pg_execute(pg_target_dsn, "UPDATE copied SET remark = 'x' WHERE id = 42")
        edited = verify(settings, engine_for, ["public.items"], chunk_rows=500)
    by_table = {t.table: t for t in report.tables}
    assert by_table["public.items"].status == "equal"
    assert by_table["public.items"].target == "public.copied"
    assert by_table["public.names"].status == "not_verifiable"
    assert "transforms[3] (mask)" in by_table["public.names"].reason
    assert report.equal and report.exit_code == 0
    assert edited.tables[0].keys == {"differing": [{"id": 42}]}


def test_mariadb_to_pg(
    tmp_path: Path, mysql_dsn: str, pg_target_dsn: str, kafka_bootstrap: str, topic_prefix: str
) -> None:
    database = urlsplit(mysql_dsn).path.strip("/")
    with mysql_connect(mysql_dsn) as conn, conn.cursor() as cur:
        for ddl in MYSQL_TABLES:
            cur.execute(ddl)
        rows = [item(i) for i in range(1, ROWS + 1)]
        for r in rows:
            stamped = r[4][:-6] if r[4] else None  # the session is in UTC
            extra = ("z,x", f"-{r[0] % 30}:02:03.5") if r[1] is not None else (None, None)
            cur.execute(
                "INSERT INTO items VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                (*r[:4], stamped, *r[5:], *extra),
            )
            cur.execute(
                "INSERT INTO plain VALUES (%s, %s, %s, %s, %s, %s, %s)",
                (r[0], r[1], r[3], stamped, r[6], r[7], r[9]),
            )
        # more than a day of hours: an interval on the target reads them as hours too
        cur.execute("UPDATE items SET took = '100:00:01' WHERE id = 2")
    settings = mysql_pipeline(
        tmp_path,
        topic_prefix,
        mysql_dsn,
        kafka_bootstrap,
        [f"{database}.items", f"{database}.plain"],
        target={"type": "postgres", "dsn": pg_target_dsn, "create_tables": True},
    )
    with running(settings, "all"):
        for table in ("items", "plain"):
            assert wait_until(lambda t=table: count(pg_target_dsn, f'"{database}".{t}') == ROWS)
        report = verify(settings, engine_for, chunk_rows=250)
        assert report.equal, report.to_json()
        hashing = {t.table.split(".")[1]: t.hashing for t in report.tables}
        assert hashing == {"items": "python", "plain": "database"}
        with psycopg.connect(pg_target_dsn) as conn:
            took = conn.execute(f'SELECT took::text FROM "{database}".items WHERE id = 2')
            assert took.fetchone() == ("100:00:01",)

        with psycopg.connect(pg_target_dsn, autocommit=True) as conn:
            conn.execute(f'UPDATE "{database}".items SET doc = \'{{"z": 0}}\' WHERE id = 77')
            conn.execute(f'UPDATE "{database}".plain SET amount = amount + 1 WHERE id = 88')
            conn.execute(f'DELETE FROM "{database}".plain WHERE id = 99')
        report = verify(settings, engine_for, chunk_rows=250)
    assert report.exit_code == 1
    keys = {t.table.split(".")[1]: t.keys for t in report.tables}
    assert keys == {
        "items": {"differing": [{"id": 77}]},
        "plain": {"missing": [{"id": 99}], "differing": [{"id": 88}]},
    }


def write_load(dsn: str, stop: threading.Event) -> int:
    """Updates, inserts and deletes on items until stopped; how many statements ran."""
    rng = random.Random(7)
    done = 0
    with psycopg.connect(dsn, autocommit=True) as conn:
        while not stop.is_set():
            i = rng.randint(1, ROWS * 2)
            action = rng.random()
            if action < 0.6:
                conn.execute(
                    "UPDATE items SET note = %s, amount = amount + 1 WHERE id = %s", (f"n{done}", i)
                )
            elif action < 0.85:
                conn.execute(
                    "INSERT INTO items VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
                    " ON CONFLICT (id) DO NOTHING",
                    item(i),
                )
            else:
                conn.execute("DELETE FROM items WHERE id = %s", (i,))
            done += 1
            time.sleep(0.005)
    return done


def test_live_load_with_a_lagging_sink_reports_no_false_difference(
    tmp_path: Path, pg_dsn: str, pg_target_dsn: str, kafka_bootstrap: str, topic_prefix: str
) -> None:
    pg_source(pg_dsn)
    settings = pg_settings(tmp_path, topic_prefix, pg_dsn, pg_target_dsn, kafka_bootstrap)
    stop = threading.Event()
    writes: list[int] = []
    writer = threading.Thread(target=lambda: writes.append(write_load(pg_dsn, stop)))
    with running(settings, "source"):
        with running(settings, "sink"):
            assert wait_until(lambda: count(pg_target_dsn, "public.items") == ROWS, timeout=120)
        writer.start()  # the sink is stopped: the target falls behind
        time.sleep(5)
        with running(settings, "sink"):
            report = verify(
                settings, engine_for, ["public.items"], chunk_rows=200, wait_timeout_s=90
            )
            stop.set()
            writer.join()
    assert writes[0] > 200
    assert report.equal, report.to_json()
    assert report.tables[0].rows >= ROWS * 0.8
    assert report.tables[0].in_flight > 0  # the sink did lag: rows differed, then settled


def mysql_count(dsn: str, table: str) -> int:
    with mysql_connect(dsn) as conn, conn.cursor() as cur:
        try:
            cur.execute(f"SELECT count(*) FROM {table}")
        except pymysql.err.ProgrammingError:
            return -1
        return int(cur.fetchone()[0])


def test_pg_to_mariadb(
    tmp_path: Path, pg_dsn: str, mysql_dsn: str, kafka_bootstrap: str, topic_prefix: str
) -> None:
    pg_source(pg_dsn)
    settings = pg_pipeline(
        tmp_path,
        topic_prefix,
        pg_dsn,
        kafka_bootstrap,
        ["public.items", "public.names"],
        target={"type": "mysql", "dsn": mysql_dsn, "create_tables": True},
        heartbeat_interval_s=0.5,
    )
    with running(settings, "all"):
        assert wait_until(lambda: mysql_count(mysql_dsn, "items") == ROWS, timeout=120)
        assert wait_until(lambda: mysql_count(mysql_dsn, "names") == 13, timeout=60)
        report = verify(settings, engine_for, chunk_rows=300)
        assert report.equal, report.to_json()
        with mysql_connect(mysql_dsn) as conn, conn.cursor() as cur:
            cur.execute("UPDATE items SET stamped = stamped + INTERVAL 1 SECOND WHERE id = 321")
            cur.execute("DELETE FROM names WHERE name = '🚀'")
        edited = verify(settings, engine_for, chunk_rows=300)
    keys = {t.table: t.keys for t in edited.tables}
    assert keys == {
        "public.items": {"differing": [{"id": 321}]},
        "public.names": {"missing": [{"name": "🚀"}]},
    }
    found = last_verify(settings.name, engine_for(settings.target))
    assert found is not None and found[1] is False


def test_waits_on_a_mariadb_source_with_one_offsets_reader_and_creates_no_topic(
    mysql_items_to_pg: Settings,
    mysql_dsn: str,
    pg_target_dsn: str,
    kafka_bootstrap: str,
    topic_prefix: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The source never ran: verify waits for a position until its timeout, reading the
    offsets topic it does not find with the one consumer it keeps for the run."""
    database = urlsplit(mysql_dsn).path.strip("/")
    with psycopg.connect(pg_target_dsn, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{database}"')
        conn.execute(f'CREATE TABLE "{database}".items (id int PRIMARY KEY, v int)')
        conn.execute(f'INSERT INTO "{database}".items VALUES (1, 1), (2, 20), (3, 3)')
    opened: list[Consumer] = []
    closed: list[Consumer] = []

    class Counted(Consumer):
        def __init__(self, config: dict[str, Any]) -> None:
            super().__init__(config)
            opened.append(self)

        def close(self) -> None:
            closed.append(self)
            super().close()

    monkeypatch.setattr(offsets, "Consumer", Counted)
    report = verify(mysql_items_to_pg, engine_for, wait_timeout_s=3)
    (table,) = report.tables
    assert (table.status, table.unconfirmed, table.keys) == (
        "different",
        True,
        {"differing": [{"id": 2}]},
    )
    assert len(opened) == 1 and closed == opened
    assert not topic_exists(kafka_bootstrap, offsets_topic(topic_prefix))
