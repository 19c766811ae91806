"""Sinks on a MySQL/MariaDB target: the target ends equal to the source, row
by row in a canonical form (decimals by value, times in UTC, JSON parsed,
bytes as hex), and values the target cannot hold go to the dead letters."""

from __future__ import annotations

import json
import random
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import psycopg
import pymysql
import pytest

from cdc.migrate.verify.canonical import canonical
from cdc.mysql.target_values import parse_duration
from cdc.schemas import Column, TableSchema
from cdc.settings_schema_changes import SchemaChangeSettings
from cdc.topics import dead_letter_topic
from sinks.mysql.tables import Catalog
from sinks.schema_changes import SchemaFollower
from tests.integration.conftest import mysql_connect, with_database
from tests.integration.pipeline import (
    TopicReader,
    mysql_pipeline,
    pg_pipeline,
    running,
    wait_until,
)

Rows = dict[tuple[Any, ...], tuple[Any, ...]]

PG_TABLES = """
CREATE TABLE customers (id int PRIMARY KEY, name text NOT NULL, balance numeric(12,2),
                        tags text[], meta jsonb, seen timestamptz, photo bytea, active boolean,
                        born date, wait interval, uid uuid, ratio double precision, bio text);
-- out of line and uncompressed: an update that leaves bio alone sends it as
-- "unchanged TOAST", and the sink updates only the columns it got
ALTER TABLE customers ALTER COLUMN bio SET STORAGE EXTERNAL;
CREATE TABLE orders (tenant text, id bigint, total numeric, note varchar(40), day date,
                     at timestamp(3), PRIMARY KEY (tenant, id));
"""
PG_COLUMNS = {
    "customers": (
        ("id",),
        "id, name, balance, tags, meta, seen, photo, active, born, wait, uid, ratio, bio",
    ),
    "orders": (("tenant", "id"), "tenant, id, total, note, day, at"),
}


def pg_workload(dsn: str, seed: int, rounds: int) -> None:
    rng = random.Random(seed)
    with psycopg.connect(dsn, autocommit=True) as conn:
        for n in range(rounds):
            cid = rng.randint(1, 300)
            # 'T1' and 't1' are two keys, as in PostgreSQL
            tenant = f"{'T' if cid % 2 else 't'}{cid % 5}"
            action = rng.random()
            if action < 0.45:
                conn.execute(
                    "INSERT INTO customers VALUES (%s, %s, %s, %s, %s, now(), %s, %s,"
                    " current_date - %s, %s * interval '1.000001 second', gen_random_uuid(),"
                    " %s, %s) ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name,"
                    " meta = EXCLUDED.meta",
                    (
                        cid,
                        f"c{n}\\t\\n'\"ü😀",
                        n * 1.5,
                        ["a", "b,c", None],
                        json.dumps({"n": n, "z": [1, None], "a": {"x": "y"}}),
                        bytes([n % 256, 0, 255]),
                        n % 3 == 0,
                        n,
                        n * 3661,
                        n / 10,
                        ("bio " * 1000 + str(n)) if cid % 3 == 0 else None,
                    ),
                )
                conn.execute(
                    "INSERT INTO orders VALUES (%s, %s, %s, %s, current_date, now())"
                    " ON CONFLICT DO NOTHING",
                    (tenant, n, n / 3, f"order {n}"),
                )
            elif action < 0.7:
                conn.execute("UPDATE customers SET balance = balance + 1 WHERE id = %s", (cid,))
                conn.execute(
                    "UPDATE orders SET total = total * 2, note = 'doubled'"
                    " WHERE tenant = %s AND id %% 4 = 1",
                    (tenant,),
                )
            elif action < 0.82:
                # `bio || ''` writes bio anew: a key change with an unchanged
                # TOAST value would reach the sink as an insert without bio,
                # which no target can apply (see the report on the PG source)
                conn.execute(
                    "UPDATE customers SET id = id + 1000, bio = bio || '' WHERE id = %s"
                    " AND NOT EXISTS (SELECT FROM customers WHERE id = %s + 1000)",
                    (cid, cid),
                )
            else:
                conn.execute("DELETE FROM customers WHERE id = %s", (cid,))
                conn.execute("DELETE FROM orders WHERE tenant = %s AND id %% 3 = 0", (tenant,))


def keyed(rows: list[tuple[Any, ...]], key_width: int) -> Rows:
    return {
        tuple(canonical(v) for v in row[:key_width]): tuple(canonical(v) for v in row)
        for row in rows
    }


def pg_rows(dsn: str, table: str) -> Rows:
    key, columns = PG_COLUMNS[table]
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(f"SELECT {columns} FROM {table}").fetchall()
    if table == "customers":  # booleans are TINYINT(1) on the target
        rows = [(*r[:7], None if r[7] is None else int(r[7]), *r[8:]) for r in rows]
    return keyed(rows, len(key))


def mysql_rows(dsn: str, table: str, columns: str, key_width: int) -> Rows:
    with mysql_connect(dsn) as conn, conn.cursor() as cur:
        cur.execute("SET time_zone = '+00:00'")
        cur.execute(f"SELECT {columns} FROM {table}")
        rows: list[tuple[Any, ...]] = list(cur.fetchall())
    return keyed(rows, key_width)


def _loads(value: Any) -> Any:
    return None if value is None else json.loads(value)


def mariadb_from_pg(dsn: str, table: str) -> Rows:
    key, columns = PG_COLUMNS[table]
    with mysql_connect(dsn) as conn, conn.cursor() as cur:
        cur.execute(f"SELECT {columns} FROM {table}")
        rows: list[tuple[Any, ...]] = list(cur.fetchall())
    if table == "customers":  # JSON comes back as text, intervals as their ISO text
        rows = [
            (
                *r[:3],
                _loads(r[3]),
                _loads(r[4]),
                *r[5:9],
                None if r[9] is None else parse_duration(r[9]),
                *r[10:],
            )
            for r in rows
        ]
    return keyed(rows, len(key))


def differences(source: Rows, target: Rows) -> str:
    missing = [k for k in source if k not in target]
    extra = [k for k in target if k not in source]
    changed = [k for k in source if k in target and source[k] != target[k]]
    text = f"missing {missing[:5]}, extra {extra[:5]}, changed {len(changed)}"
    for k in changed[:3]:
        text += f"\n  source {source[k]}\n  target {target[k]}"
    return text


def converges(pairs: list[tuple[Callable[[], Rows], Callable[[], Rows]]]) -> None:
    """Wait until every (source, target) pair holds the same rows."""
    last: list[str] = []

    def equal() -> bool:
        last.clear()
        for source, target in pairs:
            try:
                want, got = source(), target()
            except pymysql.err.ProgrammingError:  # the sink has not created the table yet
                last.append("target table missing")
                return False
            if want != got:
                last.append(differences(want, got))
                return False
        return True

    assert wait_until(equal, timeout=120), "\n".join(last)


def test_pg_to_mariadb_snapshot_and_stream_end_equal(
    tmp_path: Path, pg_dsn: str, mysql_dsn: str, kafka_bootstrap: str, unique_name: str
) -> None:
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute(PG_TABLES)
    pg_workload(pg_dsn, seed=1, rounds=300)  # before the pipeline: the snapshot carries it
    settings = pg_pipeline(
        tmp_path,
        unique_name,
        pg_dsn,
        kafka_bootstrap,
        ["public.customers", "public.orders"],
        target={"type": "mysql", "dsn": mysql_dsn, "create_tables": True},
    )
    pairs = [
        (partial(pg_rows, pg_dsn, t), partial(mariadb_from_pg, mysql_dsn, t)) for t in PG_COLUMNS
    ]
    with running(settings, "all"):
        pg_workload(pg_dsn, seed=2, rounds=600)  # while it streams
        converges(pairs)
        # Now every row is on the target, so these updates, which leave the
        # toasted bios out, arrive in batches of their own: partial updates
        # (in one batch with the row's insert they would merge into it).
        with psycopg.connect(pg_dsn, autocommit=True) as conn:
            conn.execute("UPDATE customers SET balance = balance + 1 WHERE bio IS NOT NULL")
        pg_workload(pg_dsn, seed=3, rounds=200)
        converges(pairs)
    customers = pg_rows(pg_dsn, "customers")
    assert len(customers) > 50
    assert any(row[-1] is not None for row in customers.values())  # toasted bios made it
    tenants = {key[0] for key in pg_rows(pg_dsn, "orders")}
    assert len({t.lower() for t in tenants}) < len(tenants)  # keys apart only by case


# -- MariaDB to MariaDB -------------------------------------------------------

MY_TABLE = """
CREATE TABLE things (
    id BIGINT UNSIGNED, label VARCHAR(20), amount DECIMAL(20,6), at DATETIME(6),
    ts TIMESTAMP(3) NULL, span TIME(6), doc JSON, tags SET('a','b','c'),
    mood ENUM('sad','ok','happy'), raw VARBINARY(8), f DOUBLE, yr YEAR,
    PRIMARY KEY (id, label)
)
"""
MY_COLUMNS = "id, label, amount, at, ts, span, doc, tags, mood, raw, f, yr"


def my_workload(dsn: str, seed: int, rounds: int) -> None:
    rng = random.Random(seed)
    with mysql_connect(dsn) as conn, conn.cursor() as cur:
        for n in range(rounds):
            tid = rng.randint(1, 100)
            label = rng.choice(["x", "X", "naïve 😀", "x "])
            action = rng.random()
            if action < 0.5:
                cur.execute(
                    "REPLACE INTO things VALUES (%s, %s, %s, NOW(6), NOW(3), %s, %s, %s, %s, %s,"
                    " %s, %s)",
                    (
                        18446744073709551615 - tid,
                        label,
                        f"{n}.{n:06d}",
                        f"-{n % 838}:59:59.000001",
                        json.dumps({"n": n, "k": [1, 2.5, None]}),
                        rng.choice(["a,c", "", "b"]),
                        rng.choice(["sad", "ok", None]),
                        bytes([n % 256, 0]),
                        n / 7,
                        1901 + n % 254,
                    ),
                )
            elif action < 0.7:
                cur.execute(
                    "UPDATE things SET amount = amount + 1, doc = JSON_SET(doc, '$.u', %s)"
                    " WHERE id = %s",
                    (n, 18446744073709551615 - tid),
                )
            elif action < 0.8:
                cur.execute(
                    "UPDATE IGNORE things SET label = CONCAT(label, '!') WHERE id = %s",
                    (18446744073709551615 - tid,),
                )
            else:
                cur.execute("DELETE FROM things WHERE id = %s", (18446744073709551615 - tid,))


@pytest.fixture
def mysql_target_dsn(dev_env: dict[str, str], unique_name: str) -> Iterator[str]:
    """A second fresh MariaDB database, the target of a pipeline."""
    admin_dsn = dev_env["CDC_MYSQL_DSN"]
    name = unique_name + "_dst"
    with mysql_connect(admin_dsn) as conn, conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE `{name}`")
    yield with_database(admin_dsn, name)
    with mysql_connect(admin_dsn) as conn, conn.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS `{name}`")


def mariadb_things(dsn: str) -> Rows:
    rows = mysql_rows(dsn, "things", MY_COLUMNS, 2)
    # JSON is text on both sides, and the sink writes it in its own spacing
    return {k: (*r[:6], canonical(_loads(r[6])), *r[7:]) for k, r in rows.items()}


def test_mariadb_to_mariadb_types_end_equal(
    tmp_path: Path, mysql_dsn: str, mysql_target_dsn: str, kafka_bootstrap: str, unique_name: str
) -> None:
    database = urlsplit(mysql_dsn).path.strip("/")
    with mysql_connect(mysql_dsn) as conn, conn.cursor() as cur:
        cur.execute(MY_TABLE)
    my_workload(mysql_dsn, seed=1, rounds=200)
    settings = mysql_pipeline(
        tmp_path,
        unique_name,
        mysql_dsn,
        kafka_bootstrap,
        [f"{database}.things"],
        target={"type": "mysql", "dsn": mysql_target_dsn, "create_tables": True},
    )
    with running(settings, "all"):
        my_workload(mysql_dsn, seed=2, rounds=400)
        converges([(partial(mariadb_things, mysql_dsn), partial(mariadb_things, mysql_target_dsn))])
    assert len(mariadb_things(mysql_dsn)) > 20


# -- refused values -----------------------------------------------------------


def test_values_the_target_cannot_hold_are_dead_letters(
    tmp_path: Path, pg_dsn: str, mysql_dsn: str, kafka_bootstrap: str, unique_name: str
) -> None:
    """NaN has no MySQL DOUBLE (refused before the server sees it); a note
    too long for the hand-made VARCHAR(5) is refused by the strict server."""
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE readings (id int PRIMARY KEY, value float8, note text)")
    with mysql_connect(mysql_dsn) as conn, conn.cursor() as cur:
        cur.execute("CREATE TABLE readings (id INT PRIMARY KEY, value DOUBLE, note VARCHAR(5))")
    settings = pg_pipeline(
        tmp_path,
        unique_name,
        pg_dsn,
        kafka_bootstrap,
        ["public.readings"],
        target={"type": "mysql", "dsn": mysql_dsn},
    )
    reader = TopicReader(kafka_bootstrap, dead_letter_topic(unique_name))
    try:
        with running(settings, "all"):
            with psycopg.connect(pg_dsn, autocommit=True) as conn:
                conn.execute(
                    "INSERT INTO readings VALUES (1, 1.5, 'ok'), (2, 'NaN', 'ok'),"
                    " (3, 2.5, 'too long'), (4, 3.5, 'fine')"
                )

            def applied() -> bool:
                with mysql_connect(mysql_dsn) as conn, conn.cursor() as cur:
                    cur.execute("SELECT id, value, note FROM readings ORDER BY id")
                    return list(cur.fetchall()) == [(1, 1.5, "ok"), (4, 3.5, "fine")]

            assert wait_until(applied, timeout=60)
            messages = reader.read_until(2, timeout=30)
    finally:
        reader.close()
    reasons = {
        json.loads(m.key() or b"{}")["id"]: dict(m.headers() or [])["cdc.reason"] for m in messages
    }
    assert reasons == {2: b"value", 3: b"apply"}


def test_sink_processes_creating_one_table_at_once_both_go_on(mysql_dsn: str) -> None:
    """Sink processes (sink.workers, replicas) start together: each may find
    the target table missing, or lacking a new column, and add it at once."""
    database = urlsplit(mysql_dsn).path.strip("/")
    narrow = TableSchema(
        "postgresql",
        "public",
        "items",
        (Column("id", "integer", False), Column("name", "text")),
        ("id",),
    )
    wide = replace(narrow, columns=(*narrow.columns, Column("added", "text")))
    for schema in (narrow, wide):
        both_described = threading.Barrier(2)

        def ensure(schema: TableSchema = schema, gate: threading.Barrier = both_described) -> Any:
            with mysql_connect(mysql_dsn, database) as conn:
                with conn.cursor() as cur:
                    cur.execute("SELECT VERSION()")
                    version = str(cur.fetchone()[0])
                follower = SchemaFollower(SchemaChangeSettings())
                catalog = Catalog(conn, database, version, create_tables=True, follower=follower)
                gate.wait(10)
                return catalog.ensure("items", [schema])

        with ThreadPoolExecutor(2) as pool:
            results = list(pool.map(lambda _: ensure(), range(2)))
        assert results[0] == results[1]
        columns, key, _ = results[0]
        assert list(columns) == [c.name for c in schema.columns]
        assert key == ("id",)
