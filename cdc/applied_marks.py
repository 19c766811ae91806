"""How a sink marks the changes it applies, so that a source reading the same
database skips them: reverse replication (target back to the old source)
would otherwise send every change round the loop forever.

PostgreSQL: each apply transaction starts with a transactional logical
message (prefix `cdc_applied`, content the pipeline name); the source drops
every transaction that carries one. Replication origins would do the same on
PostgreSQL 16, but on 15 they are cluster-wide objects limited by
`max_replication_slots`, usable by one session at a time (sink workers scale
out) and restricted to superusers; a message is per transaction and free.

MySQL/MariaDB: the apply session sets `server_id` to an id of a range kept
for sinks (events in the binlog carry the id of the session that wrote them),
and the source skips rows events whose server id is in that range.
"""

from __future__ import annotations

import zlib

PG_APPLIED_PREFIX = "cdc_applied"
# cdc's own PostgreSQL sessions carry this application_name and turn
# default_transaction_read_only off: a write fence (`cdc cutover`) ends every
# other session of the database and makes new ones read-only, while the
# stream (source heartbeats, the reverse sink) goes on.
PG_APPLICATION_NAME = "cdc"
PG_READ_WRITE_OPTION = " -c default_transaction_read_only=off"
# Replica ids of sources are 4242000000..4291999999 (cdc.settings.default_server_id);
# apply sessions take 4293000000..4293999999, so neither meets the other.
APPLY_SERVER_ID_MIN = 4_293_000_000
APPLY_SERVER_ID_MAX = 4_294_000_000


def apply_server_id(pipeline: str) -> int:
    """The MySQL session server_id of a pipeline's sink."""
    return APPLY_SERVER_ID_MIN + zlib.crc32(pipeline.encode()) % (
        APPLY_SERVER_ID_MAX - APPLY_SERVER_ID_MIN
    )


def applied_by_sink(server_id: int) -> bool:
    """Whether a binlog event was written by a cdc sink's apply session."""
    return APPLY_SERVER_ID_MIN <= server_id < APPLY_SERVER_ID_MAX
