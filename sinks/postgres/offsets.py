"""The sink's offset commit on a PostgreSQL target: `public.cdc_offsets`.

Contract: a batch's rows and its offsets commit in one transaction.
`write_offsets` runs inside the batch's transaction (`PostgresApplier._batch`),
after its rows, so the stored next offset of a partition never passes a
message whose change the target does not hold, and never lags one it does:
a crash at any point applies each batch exactly once. Reading them back is
`cdc.target_offsets.read_offsets`.
"""

from __future__ import annotations

from typing import Any

import psycopg

from sinks.inserts import Offsets

OFFSETS_TABLE = "public.cdc_offsets"
OFFSETS_DDL = f"""
CREATE TABLE IF NOT EXISTS {OFFSETS_TABLE} (
    consumer_group text NOT NULL,
    topic text NOT NULL,
    kafka_partition integer NOT NULL,
    next_offset bigint NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer_group, topic, kafka_partition)
)
"""


def write_offsets(cur: psycopg.Cursor[Any], group: str, offsets: Offsets) -> None:
    """Store each partition's next offset, in the transaction `cur` is in."""
    cur.executemany(
        f"INSERT INTO {OFFSETS_TABLE} (consumer_group, topic, kafka_partition, next_offset)"
        " VALUES (%s, %s, %s, %s)"
        " ON CONFLICT (consumer_group, topic, kafka_partition)"
        " DO UPDATE SET next_offset = EXCLUDED.next_offset, updated_at = now()",
        [(group, topic, partition, offset) for (topic, partition), offset in offsets.items()],
    )
