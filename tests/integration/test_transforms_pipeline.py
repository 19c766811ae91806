"""Transforms in a running PostgreSQL -> Kafka -> PostgreSQL pipeline: the target table
holds exactly the source rows that pass the filter, renamed, masked and routed."""

from __future__ import annotations

import hashlib
import hmac
from pathlib import Path
from typing import Any

import psycopg

from tests.integration.pipeline import TopicReader, pg_pipeline, running, wait_until

KEY = "integration-test-hmac-key-0123456789"
TABLES = """
CREATE TABLE customers (id int PRIMARY KEY, name text NOT NULL, email text,
                        region text, score int);
CREATE TABLE orders (id int PRIMARY KEY, customer int, total numeric(10,2));
"""
TRANSFORMS: list[dict[str, Any]] = [
    {"type": "rename_column", "table": "public.customers", "from": "name", "to": "full_name"},
    {"type": "mask", "table": "public.customers", "column": "email", "with": "hash", "key": KEY},
    {"type": "filter", "table": "public.customers", "where": "region = 'eu' and score >= 10"},
    {"type": "route", "table": "public.customers", "to": "crm.eu_customers"},
]


def customer(n: int) -> tuple[int, str, str | None, str, int]:
    email = None if n % 5 == 0 else f"user{n}@example.com"
    return n, f"name {n}", email, "eu" if n % 2 else "us", n % 20


def insert(conn: psycopg.Connection[Any], ids: range) -> None:
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO customers VALUES (%s, %s, %s, %s, %s)", [customer(n) for n in ids]
        )
        cur.executemany("INSERT INTO orders VALUES (%s, %s, %s)", [(n, n, n * 1.25) for n in ids])


def masked(email: str | None) -> str | None:
    if email is None:
        return None
    return hmac.new(KEY.encode(), email.encode(), hashlib.sha256).hexdigest()


def expected_rows(dsn: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            "SELECT id, name, email, region, score FROM customers"
            " WHERE region = 'eu' AND score >= 10 ORDER BY id"
        ).fetchall()
    return [(i, name, masked(email), region, score) for i, name, email, region, score in rows]


def target_rows(dsn: str) -> list[tuple[Any, ...]] | None:
    try:
        with psycopg.connect(dsn) as conn:
            return conn.execute(
                "SELECT id, full_name, email, region, score FROM crm.eu_customers ORDER BY id"
            ).fetchall()
    except psycopg.errors.UndefinedTable:
        return None


def count(dsn: str, table: str) -> int | None:
    try:
        with psycopg.connect(dsn) as conn:
            row = conn.execute(f"SELECT count(*) FROM {table}").fetchone()
    except psycopg.errors.UndefinedTable:
        return None
    return row[0] if row else None


def test_pg_to_pg_with_rename_mask_filter_route(
    tmp_path: Path, pg_dsn: str, pg_target_dsn: str, kafka_bootstrap: str, unique_name: str
) -> None:
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute(TABLES)
        insert(conn, range(1, 41))  # the snapshot carries these
    settings = pg_pipeline(
        tmp_path,
        unique_name,
        pg_dsn,
        kafka_bootstrap,
        ["public.customers", "public.orders"],
        target={"type": "postgres", "dsn": pg_target_dsn, "create_tables": True},
        transforms=TRANSFORMS,
    )
    with running(settings, "all"), psycopg.connect(pg_dsn, autocommit=True) as conn:
        assert wait_until(lambda: target_rows(pg_target_dsn) == expected_rows(pg_dsn))
        insert(conn, range(41, 81))
        # 11 passes (eu, 11), leaves the set, comes back, then is deleted: it must be gone
        conn.execute("UPDATE customers SET region = 'us' WHERE id = 11")
        conn.execute("UPDATE customers SET region = 'eu', name = 'back' WHERE id = 11")
        conn.execute("UPDATE customers SET score = 0 WHERE id = 13")  # leaves the set
        conn.execute("UPDATE customers SET region = 'eu' WHERE id IN (2, 12, 16)")  # 2 stays out
        conn.execute("UPDATE customers SET email = 'new@example.com' WHERE id = 15")
        conn.execute("UPDATE customers SET name = 'us only' WHERE id = 18")  # never passes
        conn.execute("DELETE FROM customers WHERE id IN (17, 20, 55)")  # in, out, in
        conn.execute("DELETE FROM customers WHERE id = 11")

        def converged() -> bool:
            return target_rows(pg_target_dsn) == expected_rows(pg_dsn) and count(
                pg_target_dsn, "public.orders"
            ) == count(pg_dsn, "public.orders")

        assert wait_until(converged, timeout=120), (
            target_rows(pg_target_dsn),
            expected_rows(pg_dsn),
        )

    rows = target_rows(pg_target_dsn)
    assert rows is not None and len(rows) > 10
    ids = {row[0] for row in rows}
    assert {12, 16, 15} <= ids and not {2, 11, 13, 14, 17, 18, 55} & ids
    assert next(row for row in rows if row[0] == 15)[2] == masked("new@example.com")
    with psycopg.connect(pg_target_dsn) as conn:
        columns = conn.execute(
            "SELECT column_name, data_type FROM information_schema.columns"
            " WHERE table_schema = 'crm' AND table_name = 'eu_customers' ORDER BY ordinal_position"
        ).fetchall()
        assert [name for name, _ in columns] == ["id", "full_name", "email", "region", "score"]
        assert dict(columns)["email"] == "text"
        # routed: nothing was written under the source's name
        assert conn.execute("SELECT to_regclass('public.customers')").fetchone() == (None,)
    # leaving rows and deletes of rows the filter kept out are not errors under source-wins
    dead = TopicReader(kafka_bootstrap, f"{unique_name}.__dlq")
    try:
        assert dead.read_until(1, timeout=5) == []
    finally:
        dead.close()
