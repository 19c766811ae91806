"""A table created on the PostgreSQL source while it streams, which `source.tables`
selects by pattern, joins the stream without a restart: the rows written before
it was added to the publication arrive by a copy, the later ones by the stream,
and the target ends equal under a write load."""

from __future__ import annotations

import time
from pathlib import Path

import psycopg

from tests.integration.convergence import WriteLoad, pg_digest, wait_equal
from tests.integration.pipeline import pg_pipeline, running

COLUMNS = ["id", "counter", "note"]
TABLE = "CREATE TABLE {} (id int PRIMARY KEY, counter int NOT NULL, note text)"


def test_a_table_created_while_streaming_joins_and_ends_equal(
    tmp_path: Path, pg_dsn: str, pg_target_dsn: str, kafka_bootstrap: str, topic_prefix: str
) -> None:
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute(TABLE.format("public.first").encode())
        conn.execute("INSERT INTO public.first VALUES (1, 0, 'before')")
    settings = pg_pipeline(
        tmp_path,
        topic_prefix,
        pg_dsn,
        kafka_bootstrap,
        {"include": ["public.*"]},
        target={"type": "postgres", "dsn": pg_target_dsn, "create_tables": True},
    )
    with running(settings, "all"):
        wait_equal(
            lambda: pg_digest(pg_dsn, "public.first", COLUMNS),
            lambda: pg_digest(pg_target_dsn, "public.first", COLUMNS),
            timeout=90,
        )
        with psycopg.connect(pg_dsn, autocommit=True) as conn:
            conn.execute(TABLE.format("public.joined").encode())
            # written at once: before the source can have added it to the publication
            with conn.cursor() as cur:
                cur.executemany(
                    "INSERT INTO public.joined VALUES (%s, 0, 'at creation')",
                    [(i,) for i in range(1, 201)],
                )
        load = WriteLoad(pg_dsn, "public.joined", "postgres")
        load.start()
        time.sleep(8)  # changes while it joins, and after
        assert load.stop() > 0
        rows, _ = wait_equal(
            lambda: pg_digest(pg_dsn, "public.joined", COLUMNS),
            lambda: pg_digest(pg_target_dsn, "public.joined", COLUMNS),
            timeout=90,
        )
    assert rows > 0
