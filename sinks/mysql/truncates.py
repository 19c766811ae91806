"""`cdc_truncates` on a MySQL/MariaDB target: which partitions of a table's
topic reached a source TRUNCATE, DROP TABLE or RENAME TABLE, and whether it
was carried out (`sinks.table_barriers`)."""

from __future__ import annotations

from typing import Any

from sinks.mysql import statements

TRUNCATES_TABLE = "cdc_truncates"
TRUNCATES_DDL = """
CREATE TABLE IF NOT EXISTS {db}.cdc_truncates (
    consumer_group VARCHAR(255) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    table_name VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
    truncate_id CHAR(32) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    kafka_partition INT NOT NULL,
    reached_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    PRIMARY KEY (consumer_group, table_name, truncate_id, kafka_partition)
) ENGINE=InnoDB
"""


def reach_truncate(
    cur: Any,
    session: statements.Session,
    group: str,
    table: str,
    truncate_id: str,
    partition: int,
) -> set[int]:
    """Record `partition` at the truncate; every partition recorded so far."""
    name = session.table(TRUNCATES_TABLE)
    cur.execute(
        f"INSERT IGNORE INTO {name} (consumer_group, table_name, truncate_id, kafka_partition)"
        " VALUES (%s, %s, %s, %s)",
        (group, table, truncate_id, partition),
    )
    cur.execute(
        f"SELECT kafka_partition FROM {name}"
        " WHERE consumer_group = %s AND table_name = %s AND truncate_id = %s",
        (group, table, truncate_id),
    )
    return {row[0] for row in cur.fetchall()}
