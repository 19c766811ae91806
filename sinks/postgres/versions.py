"""Last-writer-wins row versions on a PostgreSQL target: `public.cdc_row_versions`.

Each row a last-writer-wins table applied keeps the version (source commit
time, then Kafka position) of the change that wrote it, recorded in the
batch's transaction; a change older than the stored version is skipped
(`sinks.plan.newer_keys`).
"""

from __future__ import annotations

from typing import Any

import psycopg

from cdc.changes import KeyState, KeyValues
from sinks.plan import newer_keys, row_key

VERSIONS_DDL = """
CREATE TABLE IF NOT EXISTS public.cdc_row_versions (
    table_name text NOT NULL,
    row_key text NOT NULL,
    ts_ms bigint NOT NULL,
    kafka_partition integer NOT NULL,
    kafka_offset bigint NOT NULL,
    PRIMARY KEY (table_name, row_key)
)
"""


def newer_versions(
    conn: psycopg.Connection[Any], table: str, keys: list[tuple[KeyValues, KeyState]]
) -> set[KeyValues]:
    """Keys of `table` whose stored version is newer than this batch's change."""
    by_text = {row_key(key): (key, state) for key, state in keys}
    rows = conn.execute(
        "SELECT row_key, ts_ms, kafka_partition, kafka_offset FROM public.cdc_row_versions"
        " WHERE table_name = %s AND row_key = ANY(%s)",
        (table, list(by_text)),
    ).fetchall()
    return newer_keys(rows, by_text)


def record_versions(
    conn: psycopg.Connection[Any], table: str, applied: list[tuple[KeyValues, KeyState]]
) -> None:
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO public.cdc_row_versions VALUES (%s, %s, %s, %s, %s)"
            " ON CONFLICT (table_name, row_key) DO UPDATE SET ts_ms = EXCLUDED.ts_ms,"
            " kafka_partition = EXCLUDED.kafka_partition, kafka_offset = EXCLUDED.kafka_offset",
            [(table, row_key(key), s.ts_ms, *s.offset) for key, s in applied],
        )
