"""Commands that tell the operator the truth, on the real servers: a rollback
with no cut-over to roll back changes nothing and says so; a target that is
the source itself is refused."""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import urlsplit

import psycopg
import pytest
from psycopg import sql

from tests.integration.conftest import mysql_connect
from tests.integration.pipeline import cdc, command_config


def test_rollback_without_a_cutover_changes_nothing_and_says_so(
    tmp_path: Path, pg_dsn: str, pg_target_dsn: str, kafka_bootstrap: str, topic_prefix: str
) -> None:
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE items (id integer PRIMARY KEY)")
        database = conn.info.dbname
        # an operator made the source read-only, for reasons of their own
        conn.execute(
            sql.SQL("ALTER DATABASE {} SET default_transaction_read_only = on").format(
                sql.Identifier(database)
            )
        )
    source = {"type": "postgres", "dsn": pg_dsn, "tables": ["public.items"]}
    target = {"type": "postgres", "dsn": pg_target_dsn}
    path = command_config(tmp_path, topic_prefix, source, target, kafka_bootstrap)
    done = cdc("rollback", "-c", str(path))
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        still = conn.execute(
            "SELECT 1 FROM pg_db_role_setting s JOIN pg_database d ON d.oid = s.setdatabase"
            " WHERE d.datname = %s AND 'default_transaction_read_only=on' = ANY(s.setconfig)",
            (database,),
        ).fetchone()
    assert done.returncode == 0, done.stderr
    assert "nothing to roll back" in done.stdout + done.stderr, done.stdout + done.stderr
    assert still is not None, "rollback lifted a read-only setting that cdc never made"
    status = cdc("status", "-c", str(path))
    assert "rolled back" not in status.stdout.lower(), status.stdout


@pytest.mark.parametrize("engine", ["postgres", "mysql"])
def test_a_target_that_is_the_source_itself_is_refused(
    tmp_path: Path, engine: str, pg_dsn: str, mysql_dsn: str, kafka_bootstrap: str, unique_name: str
) -> None:
    dsn = pg_dsn if engine == "postgres" else mysql_dsn
    database = urlsplit(dsn).path.strip("/")
    if engine == "postgres":
        with psycopg.connect(pg_dsn, autocommit=True) as conn:
            conn.execute("CREATE TABLE items (id integer PRIMARY KEY)")
        table = "public.items"
    else:
        with mysql_connect(mysql_dsn) as conn, conn.cursor() as cur:
            cur.execute("CREATE TABLE items (id INT PRIMARY KEY)")
        table = f"{database}.items"
    # the same server reached by another name: still the same database
    same = dsn.replace("127.0.0.1", "localhost")
    source = {"type": engine, "dsn": dsn, "tables": [table]}
    target = {"type": engine, "dsn": same}
    path = command_config(tmp_path, unique_name, source, target, kafka_bootstrap)

    assessed = cdc("assess", "-c", str(path), "--json")
    checks = json.loads(assessed.stdout)["checks"]
    blockers = [c for c in checks if c["status"] == "blocker"]
    assert [(c["scope"], c["name"]) for c in blockers] == [("target", "distinct")], blockers
    assert f"the source and the target are the same database ({database}" in blockers[0]["detail"]

    started = cdc("run", "-c", str(path))
    assert started.returncode == 2, started.stderr[-2000:]
    assert "the source and the target are the same database" in started.stderr
