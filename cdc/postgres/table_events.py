"""RENAME and DROP of a captured table, which pgoutput does not send: what
the PostgreSQL source decides, by relation id (oid), before it emits them.

A Relation message comes before the first change of a table after the table
changed, a rename among them: a known oid under a new name is a rename, seen
before any row under that name. A DROP sends nothing. The source's catalog
scan finds the oid gone (or renamed, for a table nobody writes to) and notes
the WAL position at that moment: every change of the table was written
before it, so the event is due once the stream has passed it (`reached`: a
commit or a keepalive between transactions at or after it), never earlier,
so the table's last rows come first. A Relation of another table under a
captured table's name says the same sooner: that table must have been
dropped or renamed away, and its event goes before the newcomer's rows.

A table renamed to a name `source.tables` does not select leaves the
pipeline: a DROP of its old name, and its rows are dropped from then on.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from cdc.events import ChangeEvent, Op
from cdc.postgres.position import PgPosition
from cdc.schemas import TableSchema

Name = tuple[str, str]  # (schema, table)


def qualified(name: Name) -> str:
    return f"{name[0]}.{name[1]}"


@dataclass(slots=True)
class Tracked:
    """A table of the pipeline, by oid."""

    name: Name  # the name its topic and the sinks know it by
    # A Relation from before this LSN under another name is older than
    # `name` (the stream replays after a restart): its rows go under `name`.
    since: int
    active: bool = True  # False: renamed out of source.tables, its rows are dropped


@dataclass(frozen=True, slots=True)
class Seen:
    """A catalog scan found the table `oid` under `name` (None: gone), which
    the stream has not caught up with: due once the stream passes `at`."""

    at: int
    oid: int
    name: Name | None


@dataclass(frozen=True, slots=True)
class Gone:
    """A captured table known by name only (no oid recorded) that is gone."""

    at: int
    name: Name


@dataclass(frozen=True, slots=True)
class Renamed:
    oid: int
    old: Name
    new: Name
    since: int  # the stream position the new name holds from


@dataclass(frozen=True, slots=True)
class Dropped:
    oid: int | None  # None: a table known by name only
    name: Name
    left: bool = False  # renamed to a name source.tables does not select: it still exists


TableChange = Renamed | Dropped


class TableTracker:
    """Which name each captured table has for the sinks, and which table
    events the stream owes them."""

    def __init__(
        self, selects: Callable[[str, str], bool], lookup: Callable[[int], Name | None]
    ) -> None:
        """`lookup(oid)`: the table's name in the catalog now, None when it is gone."""
        self.tables: dict[int, Tracked] = {}
        # the active tables by name: a Relation message asks who holds its name
        self._holders: dict[Name, set[int]] = {}
        self._pending: list[Seen | Gone] = []
        self._selects = selects
        self._lookup = lookup

    def track(self, oid: int, name: Name, since: int) -> None:
        """The table `oid` is in the pipeline under `name` (at start, or joining)."""
        old = self.tables.get(oid)
        if old is not None:
            self._release(oid, old)
        self.tables[oid] = Tracked(name, since)
        self._holders.setdefault(name, set()).add(oid)

    def expect(self, seen: Seen | Gone) -> None:
        """A change the stream owes an event for once it passes `seen.at`."""
        if isinstance(seen, Seen):
            if any(isinstance(p, Seen) and (p.oid, p.name) == (seen.oid, seen.name)
                   for p in self._pending):  # fmt: skip
                return  # the scan found it again: the first position already holds
        elif any(isinstance(p, Gone) and p.name == seen.name for p in self._pending):
            return
        self._pending.append(seen)

    def active(self, oid: int) -> bool:
        entry = self.tables.get(oid)
        return entry is not None and entry.active

    def holds(self, name: Name, oid: int) -> bool:
        """Whether `name` still belongs to another table for the sinks: the
        table `oid`, new under it, waits for that table's event."""
        return bool(self._holders.get(name, set()) - {oid}) or any(
            isinstance(p, Gone) and p.name == name for p in self._pending
        )

    def relation(self, oid: int, name: Name, lsn: int) -> tuple[list[TableChange], Name | None]:
        """A Relation message of `oid` under `name` at `lsn`: the table events
        due before it, and the name its rows go under (None: dropped)."""
        entry = self.tables.get(oid)
        if entry is not None and entry.active and entry.name != name and lsn < entry.since:
            return [], entry.name
        selected = self._selects(*name)
        changes = self._vacate(name, oid, lsn) if selected else []
        if entry is None:
            # unknown and not selected: a partition of a published partitioned
            # table, which streams under its own name and is no table of the scan
            if selected:
                self.track(oid, name, lsn)
            return changes, name
        if not entry.active:
            # until the catalog scan lets it join again, with a copy of its rows
            return changes, None
        if entry.name != name:
            changes.append(self._move(oid, entry, name, lsn))
        return changes, name if entry.active else None

    def observe(self, catalog: Mapping[int, Name], at: int) -> None:
        """A catalog scan: every table's name by oid, read before WAL position `at`."""
        for oid, entry in self.tables.items():
            now = catalog.get(oid)
            if entry.active and now != entry.name:
                self.expect(Seen(at, oid, now))

    def reached(self, lsn: int) -> list[TableChange]:
        """The stream is past `lsn`, between transactions: the events now due."""
        if not self._pending or all(p.at > lsn for p in self._pending):
            return []
        due = [p for p in self._pending if p.at <= lsn]
        self._pending = [p for p in self._pending if p.at > lsn]
        changes: list[TableChange] = []
        for seen in due:
            if isinstance(seen, Gone):
                changes.append(Dropped(None, seen.name))
                continue
            entry = self.tables.get(seen.oid)
            if entry is not None and entry.active and entry.name != seen.name:
                changes.append(self._move(seen.oid, entry, seen.name, seen.at))
        return changes

    def _vacate(self, name: Name, oid: int, lsn: int) -> list[TableChange]:
        """Another table still holding `name` for the sinks has gone from it."""
        changes: list[TableChange] = []
        for seen in [p for p in self._pending if isinstance(p, Gone) and p.name == name]:
            self._pending.remove(seen)
            changes.append(Dropped(None, name))
        for other in sorted(self._holders.get(name, set()) - {oid}):
            now = self._lookup(other)
            if now != name:
                changes.append(self._move(other, self.tables[other], now, lsn))
        return changes

    def _release(self, oid: int, entry: Tracked) -> None:
        holders = self._holders.get(entry.name)
        if holders is not None:
            holders.discard(oid)
            if not holders:
                del self._holders[entry.name]

    def _move(self, oid: int, entry: Tracked, now: Name | None, since: int) -> TableChange:
        """The table `oid` is now `now` (None: gone)."""
        old = entry.name
        self._release(oid, entry)
        if now is None:
            del self.tables[oid]
            return Dropped(oid, old)
        entry.name = now
        if self._selects(*now):
            entry.since = since
            self._holders.setdefault(now, set()).add(oid)
            return Renamed(oid, old, now, since)
        entry.active = False
        return Dropped(oid, old, left=True)


def table_event(
    change: TableChange,
    schema: TableSchema,
    xid: int,
    commit_ms: int,
    lsn: int,
    source: Mapping[str, Any],
) -> ChangeEvent:
    """The event of `change`, which names `schema` (the table under its old
    name). A rename's `after` is the new name; a drop has no rows."""
    old = change.old if isinstance(change, Renamed) else change.name
    after = (
        {"schema": change.new[0], "table": change.new[1]} if isinstance(change, Renamed) else None
    )
    return ChangeEvent(
        op=Op.RENAME if isinstance(change, Renamed) else Op.DROP,
        schema=old[0],
        table=old[1],
        key=None,
        before=None,
        after=after,
        # an event found by the catalog scan belongs to no transaction of the stream
        ts_ms=commit_ms or time.time_ns() // 1_000_000,
        position=PgPosition(lsn),
        fingerprint=schema.fingerprint,
        txid=xid or None,
        source={**source, "lsn": lsn},
    )
