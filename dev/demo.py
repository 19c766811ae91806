"""A live MariaDB -> PostgreSQL migration on the local servers (`make demo`).

Seeds a small shop database in MariaDB, starts `cdc run` (source and sink in
one process) into a fresh PostgreSQL database while writes go on, stops the
writes, waits for the target to catch up and compares every row of every
table on both sides. Exits 0 when they are equal.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pymysql
import yaml

from cdc.migrate.verify.canonical import digest
from cdc.mysql.verify_sql import table_rows as mysql_rows
from cdc.postgres.verify_sql import table_rows as pg_rows

ROOT = Path(__file__).resolve().parent.parent
DEV = ROOT / ".dev"
DATABASE = "demo_shop"
TARGET = "demo_target"
WRITE_SECONDS = 20
TABLES = {
    "customers": (
        "CREATE TABLE customers (id INT PRIMARY KEY, email VARCHAR(80) NOT NULL,"
        " name VARCHAR(80), balance DECIMAL(12,2), created DATETIME(6), prefs JSON)",
        ["id", "email", "name", "balance", "created", "prefs"],
    ),
    "products": (
        "CREATE TABLE products (sku VARCHAR(20) PRIMARY KEY, title TEXT, price DECIMAL(10,2),"
        " stock INT UNSIGNED)",
        ["sku", "title", "price", "stock"],
    ),
    "orders": (
        "CREATE TABLE orders (id BIGINT UNSIGNED PRIMARY KEY, customer_id INT, sku VARCHAR(20),"
        " qty SMALLINT, status ENUM('new','paid','shipped'), placed DATETIME)",
        ["id", "customer_id", "sku", "qty", "status", "placed"],
    ),
}


def say(text: str) -> None:
    print(f"[demo] {text}", flush=True)


def dev_env() -> dict[str, str]:
    env_file = DEV / "env"
    if not env_file.exists():
        sys.exit("start the local servers first: make services")
    pairs = (line.split("=", 1) for line in env_file.read_text().splitlines() if "=" in line)
    return dict(pairs)


def mysql_args(dsn: str) -> dict[str, Any]:
    parts = urlsplit(dsn)
    return {
        "host": parts.hostname,
        "port": parts.port,
        "user": parts.username,
        "password": parts.password,
    }


def seed_source(args: dict[str, Any]) -> None:
    conn = pymysql.connect(**args, autocommit=True, charset="utf8mb4")
    with conn.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS {DATABASE}")
        cur.execute(f"CREATE DATABASE {DATABASE}")
        cur.execute(f"USE {DATABASE}")
        for ddl, _ in TABLES.values():
            cur.execute(ddl)
        cur.execute(
            "INSERT INTO customers SELECT seq, CONCAT('user', seq, '@example.com'),"
            " CONCAT('Customer ', seq), seq % 1000, NOW(6) - INTERVAL seq MINUTE,"
            " JSON_OBJECT('lang', IF(seq % 2, 'en', 'fr')) FROM seq_1_to_20000"
        )
        cur.execute(
            "INSERT INTO products SELECT CONCAT('SKU', seq), CONCAT('Product ', seq),"
            " seq / 10, seq % 50 FROM seq_1_to_1000"
        )
        cur.execute(
            "INSERT INTO orders SELECT seq, 1 + seq % 20000, CONCAT('SKU', 1 + seq % 1000),"
            " 1 + seq % 5, ELT(1 + seq % 3, 'new', 'paid', 'shipped'), NOW() FROM seq_1_to_50000"
        )
    conn.close()


def reset_target(pg_dsn: str) -> str:
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {TARGET} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {TARGET}")
    return urlunsplit(urlsplit(pg_dsn)._replace(path="/" + TARGET))


def write_load(args: dict[str, Any], seconds: float) -> int:
    """Random inserts, updates, deletes and key changes; the count written."""
    rng = random.Random(7)
    conn = pymysql.connect(**args, database=DATABASE, autocommit=True, charset="utf8mb4")
    written = 0
    next_order = 1_000_000
    deadline = time.monotonic() + seconds
    with conn.cursor() as cur:
        while time.monotonic() < deadline:
            customer = rng.randint(1, 20000)
            roll = rng.random()
            if roll < 0.4:
                next_order += 1
                cur.execute(
                    "INSERT INTO orders VALUES (%s, %s, %s, %s, 'new', NOW())",
                    (next_order, customer, f"SKU{rng.randint(1, 1000)}", rng.randint(1, 9)),
                )
            elif roll < 0.7:
                cur.execute(
                    "UPDATE customers SET balance = balance + 1.5, prefs = %s WHERE id = %s",
                    (json.dumps({"lang": "de", "seen": written}), customer),
                )
            elif roll < 0.85:
                cur.execute(
                    "UPDATE orders SET status = 'shipped' WHERE customer_id = %s", (customer,)
                )
            elif roll < 0.95:
                cur.execute("DELETE FROM orders WHERE customer_id = %s LIMIT 1", (customer,))
            else:
                cur.execute(
                    "UPDATE IGNORE customers SET id = id + 100000 WHERE id = %s", (customer,)
                )
            written += 1
    conn.close()
    return written


def compare(
    args: dict[str, Any], target_dsn: str
) -> dict[str, tuple[tuple[int, str], tuple[int, str]]]:
    out = {}
    for table, (_, columns) in TABLES.items():
        source_rows = mysql_rows(args, f"{DATABASE}.{table}", columns)
        if table == "customers":  # MariaDB JSON is text; jsonb comes back parsed
            source_rows = [(*r[:5], json.loads(r[5]) if r[5] else None) for r in source_rows]
        try:
            target_rows = pg_rows(target_dsn, f"{DATABASE}.{table}", columns)
        except psycopg.errors.UndefinedTable:
            target_rows = []
        out[table] = (digest(source_rows), digest(target_rows))
    return out


def main() -> int:
    env = dev_env()
    args = mysql_args(env["CDC_MYSQL_DSN"])
    say("seeding MariaDB database demo_shop: 20,000 customers, 1,000 products, 50,000 orders")
    seed_source(args)
    target_dsn = reset_target(env["CDC_PG_DSN"])
    name = f"demo_{int(time.time())}"  # a new pipeline each run: fresh topics and offsets
    config = {
        "name": name,
        "source": {
            "type": "mysql",
            "dsn": env["CDC_MYSQL_DSN"].rstrip("/") + "/" + DATABASE,
            "tables": [f"{DATABASE}.{t}" for t in TABLES],
        },
        "kafka": {"bootstrap_servers": env["CDC_KAFKA_BOOTSTRAP"], "partitions": 3},
        "target": {"type": "postgres", "dsn": target_dsn, "create_tables": True},
        "metrics": {"listen": "127.0.0.1:9187"},
        "log": {"format": "json", "level": "info"},
    }
    config_path = DEV / "demo.yaml"
    config_path.write_text(yaml.safe_dump(config, sort_keys=False))
    log_path = DEV / "demo.log"
    cdc = ROOT / ".venv" / "bin" / "cdc"
    say(f"starting: cdc run -c {config_path.relative_to(ROOT)} (log: {log_path.relative_to(ROOT)})")
    with log_path.open("w") as log:
        daemon = subprocess.Popen([str(cdc), "run", "-c", str(config_path)], stderr=log, stdout=log)
    try:
        say(f"writing to MariaDB for {WRITE_SECONDS} s while cdc copies and streams")
        written = write_load(args, WRITE_SECONDS)
        say(f"{written} write statements done; waiting for PostgreSQL to catch up")
        deadline = time.monotonic() + 300
        while True:
            result = compare(args, target_dsn)
            if all(source == target for source, target in result.values()):
                break
            if daemon.poll() is not None:
                say(f"cdc exited with {daemon.returncode}; see {log_path}")
                return 1
            if time.monotonic() > deadline:
                say("the target did not catch up in 5 minutes")
                break
            time.sleep(2)
    finally:
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(60)
    print(f"\n{'table':<12}{'MariaDB rows':>14}{'PostgreSQL rows':>17}  rows equal (SHA-256)")
    equal = True
    for table, ((s_count, s_hash), (t_count, t_hash)) in result.items():
        same = s_hash == t_hash
        equal &= same
        print(f"{table:<12}{s_count:>14,}{t_count:>17,}  {'yes' if same else 'NO'} {s_hash[:12]}")
    say("migration verified: both sides are equal" if equal else "the sides differ")
    return 0 if equal else 1


if __name__ == "__main__":
    os.chdir(ROOT)
    sys.exit(main())
