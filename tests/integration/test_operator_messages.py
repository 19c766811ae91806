"""Commands that tell the operator the truth, on the real servers: a rollback
with no cut-over to roll back changes nothing and says so."""

from __future__ import annotations

from pathlib import Path

import psycopg
from psycopg import sql

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
