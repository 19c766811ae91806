"""Which tables a source has captured, kept in its offset store, so that a table
added to `source.tables` after the snapshot is named at start.

Such a table streams its changes from the restart on, but its rows from before
were never read: the snapshot had finished (or never ran) without it. Until a
snapshot of one table can run beside the stream, the source says so once, with
the remedy, instead of leaving the gap for `cdc verify` to find.
"""

from __future__ import annotations

from collections.abc import Iterable

import structlog

from cdc.source_offsets import OffsetStore

CAPTURED_KEY = "tables/captured"
ADDED_FIX = (
    "copy its existing rows to the target (e.g. pg_dump --data-only -t TABLE, or mariadb-dump"
    " --no-create-info), then run cdc verify; or replicate it with a pipeline of its own"
    " (snapshot.mode: initial)"
)

log = structlog.get_logger(__name__)


def added_since(store: OffsetStore, tables: Iterable[str]) -> list[str]:
    """The tables of `tables` not captured before (none on a first start)."""
    recorded = store.get(CAPTURED_KEY)
    return [] if recorded is None else sorted(set(tables) - set(recorded))


def add_captured(store: OffsetStore, table: str) -> None:
    """`table` counts as captured: its rows from before are in Kafka."""
    store.put(CAPTURED_KEY, sorted({*(store.get(CAPTURED_KEY) or ()), table}))


def replace_captured(store: OffsetStore, table: str, new: str | None) -> None:
    """`table` is no longer captured under its name: renamed to `new`, or
    dropped (None)."""
    recorded = set(store.get(CAPTURED_KEY) or ())
    recorded.discard(table)
    if new is not None:
        recorded.add(new)
    store.put(CAPTURED_KEY, sorted(recorded))


def note_captured(store: OffsetStore, tables: Iterable[str], warn: bool) -> list[str]:
    """Record `tables` as captured; the tables added since the last start (a first
    start records without comparing). `warn`: the pipeline's snapshot is done (and
    `snapshot.mode` is not `never`), so a table added since was missed by it."""
    current = sorted(set(tables))
    recorded = store.get(CAPTURED_KEY)
    added = [] if recorded is None else [t for t in current if t not in set(recorded)]
    if warn:
        for table in added:
            log.warning("table_added_without_snapshot", table=table, fix=ADDED_FIX)
    if recorded is None or set(recorded) != set(current):
        store.put(CAPTURED_KEY, current)
    return added
