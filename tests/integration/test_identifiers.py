"""A table and columns named with quotes, spaces and unicode replicate correctly,
snapshot and stream, PostgreSQL and MariaDB to PostgreSQL: every name goes
through the driver's identifier quoting, never into SQL text as it is."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

import psycopg
from psycopg import sql

from tests.integration.conftest import mysql_connect
from tests.integration.convergence import mysql_digest, pg_digest, wait_equal
from tests.integration.pipeline import mysql_pipeline, pg_pipeline, running

TABLE = 'Kunden "VIP" l\'été ü 表'
KEY = 'n°"id"'
VALUE = "Straße 'x' \"y\" `z`; drop"
COLUMNS = [KEY, VALUE]
ROWS = [(i, f"value {i} é") for i in range(1, 51)]


def test_odd_names_postgres_to_postgres(
    tmp_path: Path, pg_dsn: str, pg_target_dsn: str, kafka_bootstrap: str, topic_prefix: str
) -> None:
    table = sql.Identifier("public", TABLE)
    key, value = sql.Identifier(KEY), sql.Identifier(VALUE)
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute(
            sql.SQL("CREATE TABLE {} ({} int PRIMARY KEY, {} text)").format(table, key, value)
        )
        with conn.cursor() as cur:
            cur.executemany(sql.SQL("INSERT INTO {} VALUES (%s, %s)").format(table), ROWS)
    settings = pg_pipeline(
        tmp_path,
        topic_prefix,
        pg_dsn,
        kafka_bootstrap,
        [f"public.{TABLE}"],
        target={"type": "postgres", "dsn": pg_target_dsn, "create_tables": True},
    )
    name = f"public.{TABLE}"
    with running(settings, "all"):
        wait_equal(
            lambda: pg_digest(pg_dsn, name, COLUMNS),
            lambda: pg_digest(pg_target_dsn, name, COLUMNS),
            timeout=90,
        )
        with psycopg.connect(pg_dsn, autocommit=True) as conn:
            conn.execute(sql.SQL("INSERT INTO {} VALUES (100, 'new')").format(table))
            conn.execute(
                sql.SQL("UPDATE {} SET {} = 'changed' WHERE {} = 2").format(table, value, key)
            )
            conn.execute(sql.SQL("DELETE FROM {} WHERE {} = 3").format(table, key))
            conn.execute(sql.SQL("UPDATE {} SET {} = 1000 WHERE {} = 4").format(table, key, key))
        rows, _ = wait_equal(
            lambda: pg_digest(pg_dsn, name, COLUMNS),
            lambda: pg_digest(pg_target_dsn, name, COLUMNS),
            timeout=60,
        )
    assert rows == len(ROWS)  # one inserted, one deleted


def _q(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def test_odd_names_mariadb_to_postgres(
    tmp_path: Path, mysql_dsn: str, pg_target_dsn: str, kafka_bootstrap: str, topic_prefix: str
) -> None:
    database = urlsplit(mysql_dsn).path.strip("/")
    table = _q(TABLE)
    key, value = _q(KEY), _q(VALUE)
    with mysql_connect(mysql_dsn) as conn, conn.cursor() as cur:
        cur.execute(f"CREATE TABLE {table} ({key} INT PRIMARY KEY, {value} VARCHAR(40))")
        cur.executemany(f"INSERT INTO {table} VALUES (%s, %s)", ROWS)
    settings = mysql_pipeline(
        tmp_path,
        topic_prefix,
        mysql_dsn,
        kafka_bootstrap,
        [f"{database}.{TABLE}"],
        target={"type": "postgres", "dsn": pg_target_dsn, "create_tables": True},
    )
    name = f"{database}.{TABLE}"
    with running(settings, "all"):
        wait_equal(
            lambda: mysql_digest(mysql_dsn, name, COLUMNS),
            lambda: pg_digest(pg_target_dsn, name, COLUMNS),
            timeout=90,
        )
        with mysql_connect(mysql_dsn) as conn, conn.cursor() as cur:
            cur.execute(f"INSERT INTO {table} VALUES (100, 'new')")
            cur.execute(f"UPDATE {table} SET {value} = 'changed' WHERE {key} = 2")
            cur.execute(f"DELETE FROM {table} WHERE {key} = 3")
            cur.execute(f"UPDATE {table} SET {key} = 1000 WHERE {key} = 4")
        rows, _ = wait_equal(
            lambda: mysql_digest(mysql_dsn, name, COLUMNS),
            lambda: pg_digest(pg_target_dsn, name, COLUMNS),
            timeout=60,
        )
    assert rows == len(ROWS)
