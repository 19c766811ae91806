"""The sink's offset commit on a MySQL/MariaDB target: `cdc_offsets` in the
DSN's database.

Contract: a batch's rows and its offsets commit in one transaction.
`write_offsets` runs inside the batch's transaction (`MysqlApplier.apply`),
after its rows, so the stored next offset of a partition never passes a
message whose change the target does not hold, and never lags one it does:
a crash at any point applies each batch exactly once. Reading them back is
`cdc.target_offsets.read_offsets`.
"""

from __future__ import annotations

from typing import Any

from sinks.inserts import Offsets
from sinks.mysql import statements

OFFSETS_TABLE = "cdc_offsets"
OFFSETS_DDL = """
CREATE TABLE IF NOT EXISTS {db}.cdc_offsets (
    consumer_group VARCHAR(255) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    topic VARCHAR(255) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    kafka_partition INT NOT NULL,
    next_offset BIGINT NOT NULL,
    updated_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    PRIMARY KEY (consumer_group, topic, kafka_partition)
) ENGINE=InnoDB
"""
_COLUMNS = ("consumer_group", "topic", "kafka_partition", "next_offset")


def write_offsets(cur: Any, session: statements.Session, group: str, offsets: Offsets) -> None:
    """Store each partition's next offset, in the transaction `cur` is in."""
    escape = session.escape
    values = [f"({escape(group)}, {escape(t)}, {p}, {o})" for (t, p), o in offsets.items()]
    for sql in statements.upserts(
        session.table(OFFSETS_TABLE),
        _COLUMNS,
        values,
        ["next_offset"],
        session.budget,
        session.alias,
        "updated_at = CURRENT_TIMESTAMP(6)",
    ):
        cur.execute(sql)
