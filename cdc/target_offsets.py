"""How far the sink applied, as the target holds it: the `cdc_offsets` table, read.

A row (consumer group, topic, partition) -> next offset is written by the sink
in the same target transaction as the rows of the batch it covers
(`sinks.postgres.offsets`, `sinks.mysql.offsets`), so it says exactly which
messages the target holds. This module only reads it: the sink seeking on a
partition assignment (`Applier.committed_offsets`), `cdc replay` before it
moves positions back, and the wait of verify and the cut-over
(`cdc.migrate.positions`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

COLUMNS = ("topic", "kafka_partition", "next_offset")


class Cursor(Protocol):
    """A DB-API cursor with `%s` parameters (psycopg, PyMySQL)."""

    def execute(self, query: str, params: Sequence[Any], /) -> object: ...

    def fetchall(self) -> Sequence[Any]: ...


def read_offsets(
    cursor: Cursor, table: str, group: str, topics: Sequence[str] | None = None
) -> dict[tuple[str, int], int]:
    """The next offset to read per (topic, partition), as `group` last committed
    it in `table` (SQL text, qualified and quoted as its engine wants); only of
    `topics` when given. Rows may be tuples or mappings (PyMySQL's DictCursor)."""
    query = f"SELECT {', '.join(COLUMNS)} FROM {table} WHERE consumer_group = %s"
    params = [group]
    if topics is not None:
        if not topics:
            return {}
        query += f" AND topic IN ({', '.join(['%s'] * len(topics))})"
        params.extend(topics)
    cursor.execute(query, params)
    offsets = {}
    for row in cursor.fetchall():
        topic, partition, offset = (
            (row[name] for name in COLUMNS) if isinstance(row, Mapping) else row
        )
        offsets[(str(topic), int(partition))] = int(offset)
    return offsets
