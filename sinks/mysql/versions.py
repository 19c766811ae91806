"""Last-writer-wins row versions on a MySQL/MariaDB target: `cdc_row_versions`
in the DSN's database.

Each row a last-writer-wins table applied keeps the version (source commit
time, then Kafka position) of the change that wrote it, recorded in the
batch's transaction; a change older than the stored version is skipped
(`sinks.plan.newer_keys`).
"""

from __future__ import annotations

import hashlib
from typing import Any

from cdc.changes import KeyState, KeyValues
from sinks.mysql import statements
from sinks.plan import newer_keys, row_key

# Keyed by a hash of the key text: InnoDB indexes at most 3072 bytes, and a
# row key (JSON of the key values) can be longer.
VERSIONS_DDL = """
CREATE TABLE IF NOT EXISTS {db}.cdc_row_versions (
    table_name VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
    key_hash BINARY(32) NOT NULL,
    row_key LONGTEXT CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
    ts_ms BIGINT NOT NULL,
    kafka_partition INT NOT NULL,
    kafka_offset BIGINT NOT NULL,
    PRIMARY KEY (table_name, key_hash)
) ENGINE=InnoDB
"""
VERSIONS_TABLE = "cdc_row_versions"
_COLUMNS = ("table_name", "key_hash", "row_key", "ts_ms", "kafka_partition", "kafka_offset")
_UPDATED = ("ts_ms", "kafka_partition", "kafka_offset")


def newer_versions(
    cur: Any, session: statements.Session, table: str, keys: list[tuple[KeyValues, KeyState]]
) -> set[KeyValues]:
    """Keys of `table` whose stored version is newer than this batch's change."""
    by_text = {row_key(key): (key, state) for key, state in keys}
    hashes = [session.escape(_digest(text)) for text in by_text]
    sizes = [len(h) for h in hashes]
    stored: list[tuple[str, int, int, int]] = []
    for chunk in statements.chunked(hashes, sizes, session.budget, statements.MAX_ROWS):
        cur.execute(
            "SELECT row_key, ts_ms, kafka_partition, kafka_offset"
            f" FROM {session.table(VERSIONS_TABLE)}"
            f" WHERE table_name = %s AND key_hash IN ({', '.join(chunk)})",
            (table,),
        )
        stored.extend(cur.fetchall())
    return newer_keys(stored, by_text)


def record_versions(
    cur: Any, session: statements.Session, table: str, applied: list[tuple[KeyValues, KeyState]]
) -> None:
    escape = session.escape
    name = escape(table)
    values = []
    for key, state in applied:
        text = row_key(key)
        partition, offset = state.offset
        values.append(
            f"({name}, {escape(_digest(text))}, {escape(text)}, {state.ts_ms},"
            f" {partition}, {offset})"
        )
    for sql in statements.upserts(
        session.table(VERSIONS_TABLE), _COLUMNS, values, _UPDATED, session.budget, session.alias
    ):
        cur.execute(sql)


def _digest(text: str) -> bytes:
    """`cdc_row_versions` is keyed by this: InnoDB cannot index a long key text."""
    return hashlib.sha256(text.encode()).digest()
