"""Sinks on a PostgreSQL target: the target ends equal to the source."""

from __future__ import annotations

import random
from pathlib import Path

import psycopg
from prometheus_client import REGISTRY

from tests.integration.pipeline import pg_pipeline, running, wait_until

TABLES = """
CREATE TABLE customers (id int PRIMARY KEY, name text NOT NULL, balance numeric(12,2),
                        tags text[], meta jsonb, seen timestamptz, photo bytea);
CREATE TABLE orders (tenant int, id bigint, total numeric, note text, day date,
                     PRIMARY KEY (tenant, id));
"""


def table_hash(dsn: str, table: str, key: str) -> tuple[int, str]:
    """Row count and a hash over every row's canonical text, in key order."""
    with psycopg.connect(dsn) as conn:
        row = conn.execute(
            f"SELECT count(*), coalesce(md5(string_agg(t::text, '|' ORDER BY {key})), '')"
            f" FROM {table} t"
        ).fetchone()
    assert row is not None
    return row[0], row[1]


def workload(dsn: str, seed: int, rounds: int) -> None:
    rng = random.Random(seed)
    with psycopg.connect(dsn, autocommit=True) as conn:
        for n in range(rounds):
            cid = rng.randint(1, 300)
            action = rng.random()
            if action < 0.5:
                conn.execute(
                    "INSERT INTO customers VALUES (%s, %s, %s, %s, %s, now(), %s)"
                    " ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name",
                    (
                        cid,
                        f"c{n}\\t\\n'\"",
                        n * 1.5,
                        ["a", "b,c", None],
                        f'{{"n": {n}}}',
                        b"\x00\x01",
                    ),
                )
                conn.execute(
                    "INSERT INTO orders VALUES (%s, %s, %s, %s, current_date)"
                    " ON CONFLICT DO NOTHING",
                    (cid % 7, n, n / 3, f"order {n}"),
                )
            elif action < 0.75:
                conn.execute("UPDATE customers SET balance = balance + 1 WHERE id = %s", (cid,))
            elif action < 0.85:
                conn.execute(
                    "UPDATE customers SET id = id + 1000 WHERE id = %s"
                    " AND NOT EXISTS (SELECT FROM customers WHERE id = %s + 1000)",
                    (cid, cid),
                )
            else:
                conn.execute("DELETE FROM customers WHERE id = %s", (cid,))
                conn.execute("DELETE FROM orders WHERE tenant = %s AND id %% 3 = 0", (cid % 7,))


def test_pg_to_pg_snapshot_and_stream_end_equal(
    tmp_path: Path, pg_dsn: str, pg_target_dsn: str, kafka_bootstrap: str, unique_name: str
) -> None:
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute(TABLES)
    workload(pg_dsn, seed=1, rounds=300)  # before the pipeline: the snapshot carries it
    settings = pg_pipeline(
        tmp_path,
        unique_name,
        pg_dsn,
        kafka_bootstrap,
        ["public.customers", "public.orders"],
        target={"type": "postgres", "dsn": pg_target_dsn, "create_tables": True},
    )
    with running(settings, "all"):
        workload(pg_dsn, seed=2, rounds=600)  # while it streams

        def equal() -> bool:
            try:
                return table_hash(pg_dsn, "customers", "id") == table_hash(
                    pg_target_dsn, "customers", "id"
                ) and table_hash(pg_dsn, "orders", "tenant, id") == table_hash(
                    pg_target_dsn, "orders", "tenant, id"
                )
            except psycopg.errors.UndefinedTable:
                return False

        assert wait_until(equal, timeout=120)
    assert table_hash(pg_dsn, "customers", "id")[0] > 0
    lag = REGISTRY.get_sample_value(
        "cdc_sink_consumer_lag_messages",
        {"topic": f"{unique_name}.public.customers", "partition": "0"},
    )
    assert lag is not None and lag >= 0
