"""The PostgreSQL source's record of its captured tables by oid, kept in its
offset store beside `cdc.captured_tables` (which names them): the name each
table has for the sinks, and since which stream position.

Names alone cannot follow a table across a restart: a table renamed while
the source was down is gone under its old name and new under the other, and
a name may belong to a table created again. By oid, the start finds what
changed and owes the stream its events (`cdc.postgres.table_events`); the
position tells a replayed Relation message under an older name from a new
rename. The record moves with each table event once Kafka has it
(`TableEventSent`), so a crash before then sends the event again.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from cdc.captured_tables import CAPTURED_KEY, added_since, note_captured, replace_captured
from cdc.postgres.catalog import PgTable
from cdc.postgres.table_events import Gone, Name, Seen, TableTracker, qualified
from cdc.source_offsets import OffsetStore

RELATIONS_KEY = "postgres/relations"

Record = dict[int, tuple[Name, int]]  # oid -> (name, since)


@dataclass(frozen=True, order=True, slots=True)
class TableEventSent:
    """A table's RENAME (to `new`) or DROP (`new` None) is in Kafka."""

    since: int
    old: Name
    new: Name | None
    oid: int | None  # None: a table known by name only

    def to_json(self) -> dict[str, Any]:
        return {"table_event": qualified(self.old), "to": self.new and qualified(self.new)}


def load(store: OffsetStore) -> Record | None:
    raw = store.get(RELATIONS_KEY)
    if raw is None:
        return None
    return {int(oid): ((e["schema"], e["table"]), int(e["since"])) for oid, e in raw.items()}


def _save(store: OffsetStore, record: Record) -> None:
    store.put(
        RELATIONS_KEY,
        {
            str(oid): {"schema": name[0], "table": name[1], "since": since}
            for oid, (name, since) in sorted(record.items())
        },
    )


def start(
    store: OffsetStore,
    tracker: TableTracker,
    catalog_rows: Sequence[tuple[int, str, str]],
    tables: Sequence[PgTable],
    at: int,
    copies: bool,
    selects: Callable[[str, str], bool],
) -> list[str]:
    """Put every captured table on `tracker`, with the events the stream owes
    for what changed while the source was down, due at WAL position `at`
    (read after `catalog_rows`, every table of the catalog as (oid, schema,
    name)). `tables`: what source.tables selects now. Returns the tables to
    copy as they join (`copies`: the snapshot is done and not `never`)."""
    catalog = {oid: (schema, name) for oid, schema, name in catalog_rows}
    recorded = load(store)
    names = [t.qualified for t in tables]
    if recorded is None:  # a first start, or the record is new to this pipeline
        added = added_since(store, names) if copies else []
    else:
        added = [t.qualified for t in tables if t.oid not in recorded] if copies else []
        for oid, (name, since) in recorded.items():
            now = catalog.get(oid)
            if now == name and not selects(*name):
                continue  # taken out of source.tables: no event, the table is as it was
            tracker.track(oid, name, since)
            if now != name:
                tracker.expect(Seen(at, oid, now))
    for table in tables:
        if table.oid not in tracker.tables:
            tracker.track(table.oid, (table.schema, table.name), at)
    # captured by name only (before the record, or between its two writes)
    existing = {qualified(name) for name in catalog.values()}
    known = {qualified(name) for name, _ in (recorded or {}).values()}
    gone = [
        name for name in store.get(CAPTURED_KEY) or () if name not in existing and name not in known
    ]
    for name in gone:
        schema, _, table = name.partition(".")
        tracker.expect(Gone(at, (schema, table)))
    joining = {t.oid for t in tables if t.qualified in added}  # recorded once copied
    record = {
        oid: (entry.name, entry.since)
        for oid, entry in tracker.tables.items()
        if oid not in joining
    }
    if record != recorded:
        _save(store, record)
    # a gone table stays captured until its DROP is in Kafka
    note_captured(store, [n for n in names if n not in added] + gone, False)
    return added


def record_event(store: OffsetStore, event: TableEventSent) -> None:
    """The names first: a crash between the two writes sends the event again
    (the record still has the old name), which a sink takes as done."""
    replace_captured(store, qualified(event.old), event.new and qualified(event.new))
    if event.oid is None:
        return
    record = load(store) or {}
    if event.new is None:
        record.pop(event.oid, None)
    else:
        record[event.oid] = (event.new, event.since)
    _save(store, record)


def record_joined(store: OffsetStore, oid: int, name: Name, since: int) -> None:
    """A table that joined the stream has every row in Kafka."""
    record = load(store) or {}
    record[oid] = (name, since)
    _save(store, record)
