"""MariaDB to PostgreSQL: snapshot plus a live workload, ending equal row for row."""

from __future__ import annotations

import json
import random
import threading
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import psycopg

from cdc.migrate.verify.canonical import digest
from cdc.mysql.verify_sql import table_rows as mysql_rows
from cdc.postgres.verify_sql import table_rows as pg_rows
from tests.integration.conftest import mysql_connect
from tests.integration.pipeline import mysql_pipeline, running, wait_until

TABLES = [
    """CREATE TABLE customers (id INT PRIMARY KEY, name VARCHAR(50) NOT NULL,
       balance DECIMAL(12,2), created DATETIME(6), doc JSON, active TINYINT)""",
    """CREATE TABLE orders (id BIGINT UNSIGNED PRIMARY KEY, customer_id INT,
       total DECIMAL(10,2), status ENUM('new','paid','shipped'), note TEXT)""",
]
COLUMNS = {
    "customers": ["id", "name", "balance", "created", "doc", "active"],
    "orders": ["id", "customer_id", "total", "status", "note"],
}


def workload(dsn: str, seed: int, rounds: int) -> None:
    rng = random.Random(seed)
    with mysql_connect(dsn) as conn, conn.cursor() as cur:
        for n in range(rounds):
            cid = rng.randint(1, 200)
            action = rng.random()
            if action < 0.5:
                cur.execute(
                    "REPLACE INTO customers VALUES (%s, %s, %s, NOW(6), %s, %s)",
                    (cid, f"name {n} ü", n / 7, json.dumps({"n": n, "tags": ["x"]}), n % 2),
                )
                cur.execute(
                    "INSERT IGNORE INTO orders VALUES (%s, %s, %s, %s, %s)",
                    (seed * 100000 + n, cid, n * 1.25, rng.choice(["new", "paid"]), "a\tb\n"),
                )
            elif action < 0.7:
                cur.execute("UPDATE customers SET balance = balance + 1 WHERE id = %s", (cid,))
                cur.execute("UPDATE orders SET status = 'shipped' WHERE customer_id = %s", (cid,))
            elif action < 0.8:
                cur.execute("UPDATE IGNORE customers SET id = id + 1000 WHERE id = %s", (cid,))
            else:
                cur.execute("DELETE FROM customers WHERE id = %s", (cid,))
                cur.execute("DELETE FROM orders WHERE customer_id = %s", (cid,))


def mysql_digest(dsn: str, database: str, table: str) -> tuple[int, str]:
    parts = urlsplit(dsn)
    args: dict[str, Any] = {
        "host": parts.hostname,
        "port": parts.port,
        "user": parts.username,
        "password": parts.password,
    }
    rows = mysql_rows(args, f"{database}.{table}", COLUMNS[table])
    if table == "customers":  # MariaDB JSON is text; PostgreSQL's jsonb comes back parsed
        rows = [(*r[:4], json.loads(r[4]) if r[4] else None, r[5]) for r in rows]
    return digest(rows)


def test_mariadb_to_postgres_ends_equal(
    tmp_path: Path, mysql_dsn: str, pg_target_dsn: str, kafka_bootstrap: str, unique_name: str
) -> None:
    database = urlsplit(mysql_dsn).path.strip("/")
    with mysql_connect(mysql_dsn) as conn, conn.cursor() as cur:
        for ddl in TABLES:
            cur.execute(ddl)
    workload(mysql_dsn, seed=1, rounds=300)
    settings = mysql_pipeline(
        tmp_path,
        unique_name,
        mysql_dsn,
        kafka_bootstrap,
        [f"{database}.customers", f"{database}.orders"],
        target={"type": "postgres", "dsn": pg_target_dsn, "create_tables": True},
    )
    with running(settings, "all"):
        writer = threading.Thread(target=workload, args=(mysql_dsn, 2, 600))
        writer.start()
        writer.join()

        def equal() -> bool:
            try:
                return all(
                    mysql_digest(mysql_dsn, database, table)
                    == digest(pg_rows(pg_target_dsn, f"{database}.{table}", COLUMNS[table]))
                    for table in COLUMNS
                )
            except psycopg.errors.UndefinedTable:
                return False

        assert wait_until(equal, timeout=120)
    assert mysql_digest(mysql_dsn, database, "orders")[0] > 100
