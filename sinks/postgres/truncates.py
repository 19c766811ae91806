"""`public.cdc_truncates` on a PostgreSQL target: which partitions of a
table's topic reached a source TRUNCATE, DROP TABLE or RENAME TABLE, and
whether it was carried out (`sinks.table_barriers`)."""

from __future__ import annotations

from typing import Any

import psycopg

TRUNCATES_DDL = """
CREATE TABLE IF NOT EXISTS public.cdc_truncates (
    consumer_group text NOT NULL,
    table_name text NOT NULL,
    truncate_id text NOT NULL,
    kafka_partition integer NOT NULL,
    reached_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer_group, table_name, truncate_id, kafka_partition)
)
"""


def reach_truncate(
    conn: psycopg.Connection[Any], group: str, table: str, truncate_id: str, partition: int
) -> set[int]:
    """Record `partition` at the truncate; every partition recorded so far."""
    conn.execute(
        "INSERT INTO public.cdc_truncates (consumer_group, table_name, truncate_id,"
        " kafka_partition) VALUES (%s, %s, %s, %s) ON CONFLICT DO NOTHING",
        (group, table, truncate_id, partition),
    )
    rows = conn.execute(
        "SELECT kafka_partition FROM public.cdc_truncates"
        " WHERE consumer_group = %s AND table_name = %s AND truncate_id = %s",
        (group, table, truncate_id),
    ).fetchall()
    return {row[0] for row in rows}
