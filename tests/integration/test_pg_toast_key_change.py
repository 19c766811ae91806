"""A primary-key change of a row whose TOASTed column the UPDATE leaves alone:
pgoutput sends the new row without that value (unchanged TOAST), yet the row
under its new key reaches the target whole, bodies and all, with nothing
dead-lettered. Also when the row has moved on by the time the source reads it:
deleted, re-keyed again, or its body rewritten."""

from __future__ import annotations

import random
import string
from pathlib import Path

import psycopg

from cdc.topics import dead_letter_topic, table_topic
from tests.integration.pipeline import pg_pipeline, running, topic_exists, wait_until
from tests.integration.sink_support import end_positions, table_digest, wait_applied

MOVE = 1_000_000  # what a re-key adds to the id


def body(rng: random.Random, low: int = 3000, high: int = 12000) -> str:
    """Random letters do not compress: over 2 kB is stored out of line (TOAST)."""
    return "".join(rng.choices(string.ascii_lowercase, k=rng.randint(low, high)))


def toasted(dsn: str, table: str = "items", column: str = "body") -> int:
    """Rows whose `column` is stored out of line."""
    with psycopg.connect(dsn) as conn:
        row = conn.execute(
            f"SELECT count(*) FROM {table} WHERE pg_column_size({column}) > 2000"
        ).fetchone()
    assert row is not None
    return int(row[0])


def test_key_changes_keep_unchanged_toast_values(
    tmp_path: Path, pg_dsn: str, pg_target_dsn: str, kafka_bootstrap: str, topic_prefix: str
) -> None:
    rng = random.Random(7)
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE items (id bigint PRIMARY KEY, qty int, body text)")
        for n in range(1, 31):
            conn.execute("INSERT INTO items VALUES (%s, %s, %s)", (n, n, body(rng)))
        # a key column stored out of line too (an index entry holds up to 2.7 kB)
        conn.execute(
            "CREATE TABLE docs (name text, version int, note text, PRIMARY KEY (name, version))"
        )
        for _ in range(3):
            conn.execute("INSERT INTO docs VALUES (%s, 1, %s)", (body(rng, 2500, 2600), body(rng)))
    assert toasted(pg_dsn) == 30
    assert toasted(pg_dsn, "docs", "name") == 3
    settings = pg_pipeline(
        tmp_path,
        topic_prefix,
        pg_dsn,
        kafka_bootstrap,
        ["public.items", "public.docs"],
        target={"type": "postgres", "dsn": pg_target_dsn, "create_tables": True},
    )

    def same() -> bool:
        try:
            return all(
                table_digest(pg_dsn, table, key) == table_digest(pg_target_dsn, table, key)
                for table, key in (("items", "id"), ("docs", "name, version"))
            )
        except psycopg.errors.UndefinedTable:
            return False

    def rekey(conn: psycopg.Connection[object], old: int, new: int) -> None:
        conn.execute("UPDATE items SET id = %s, qty = qty + 1 WHERE id = %s", (new, old))

    with running(settings, "all"):
        assert wait_until(same, timeout=60), "the snapshot did not reach the target"
        # while the source streams: it reads each moved row right after its commit
        with psycopg.connect(pg_dsn, autocommit=True) as conn:
            for n in range(1, 6):
                rekey(conn, n, n + MOVE)
            # several rows in one statement, and a row inserted while streaming
            conn.execute("UPDATE items SET id = id + %s, qty = 5 WHERE id BETWEEN 6 AND 8", (MOVE,))
            conn.execute("INSERT INTO items VALUES (31, 31, %s)", (body(rng),))
            rekey(conn, 31, 31 + MOVE)
            with conn.transaction():  # twice in one transaction
                rekey(conn, 9, 9 + MOVE)
                rekey(conn, 9 + MOVE, 9 + 2 * MOVE)
            # the new key's name is unchanged TOAST too; then an update of neither key column
            conn.execute("UPDATE docs SET version = 2")
            conn.execute("UPDATE docs SET note = 'short' WHERE name < 'n'")
        assert wait_until(same, timeout=30), "the moves made while streaming differ"

    # Stopped: when the source reads these moved rows, they have moved on since.
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        rekey(conn, 10, 10 + MOVE)
        conn.execute("DELETE FROM items WHERE id = %s", (10 + MOVE,))  # re-keyed, then deleted
        rekey(conn, 11, 11 + MOVE)  # re-keyed twice
        rekey(conn, 11 + MOVE, 11 + 2 * MOVE)
        rekey(conn, 12, 12 + MOVE)  # re-keyed, then its body rewritten
        conn.execute("UPDATE items SET body = %s WHERE id = %s", (body(rng), 12 + MOVE))
        rekey(conn, 13, 13 + MOVE)  # re-keyed, then another row takes its old key
        conn.execute("INSERT INTO items VALUES (13, 0, %s)", (body(rng),))
        rekey(conn, 14, 14 + MOVE)  # re-keyed away and back again
        rekey(conn, 14 + MOVE, 14)
        rekey(conn, 15, 15 + MOVE)  # re-keyed, then a later update leaves the body alone
        conn.execute("UPDATE items SET qty = 99 WHERE id = %s", (15 + MOVE,))
    assert toasted(pg_dsn) == 31  # 32 rows, one deleted: every body still out of line

    with running(settings, "all"):
        assert wait_until(same, timeout=30), "the moves made while stopped differ"
        topics = [table_topic(topic_prefix, "public", table) for table in ("items", "docs")]
        wait_applied(
            pg_target_dsn, settings.consumer_group, end_positions(kafka_bootstrap, topics, 2)
        )
    with psycopg.connect(pg_target_dsn) as conn:
        moved = conn.execute("SELECT count(*) FROM items WHERE id > %s", (MOVE,)).fetchone()
    assert moved == (14,)
    dlq = dead_letter_topic(topic_prefix)
    if topic_exists(kafka_bootstrap, dlq):
        assert end_positions(kafka_bootstrap, [dlq], 1) == {(dlq, 0): 0}, "dead letters"
