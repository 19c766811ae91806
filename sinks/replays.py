"""Telling a restarted source's replay from an update of a row that is missing.

A source publishes at least once: one that restarts publishes again what
Kafka had acknowledged but the source had not yet confirmed to its server
(PostgreSQL's confirmed flush LSN) or stored (MariaDB's binlog position), at
new offsets and with the source positions of the first time.
Applied again, the changes leave the same rows, but for one case: an update
that left columns out (PostgreSQL unchanged TOAST, a MariaDB minimal row
image) of a row whose later delete the sink has applied since. The first
time it found its row; the second time it finds none and cannot insert one
without the columns it lacks, which `sinks.plan` dead-letters as a target
row really missing. Its own delete follows it in the replay.

Such an update is a replay when this worker applied a delete of the same key
at a later source position: a source changes one row in order (PostgreSQL's
row locks, the binlog's commit order), so an update from before the delete
was published before it, and what is older than the delete is gone with the
row anyway. It is flagged (`KeyState.replayed`) and resolved as a `replayed`
conflict (`sinks.conflicts`: skipped, but under the `error` policy).

By the key's delete, not by the highest position its partition has applied:
a PostgreSQL change's LSN is where it was written, not where its
transaction committed, and transactions are published in commit order. An
update in a long transaction, committed after changes applied since, carries
a lower LSN than theirs without ever having been applied: were it taken for
a replay, a row really missing would no longer reach the dead letters.

Remembered in this worker only, not with the offsets in the target: what it
does not know (after a sink restart or a new partition assignment, or past
`LIMIT` deletes) is dead-lettered as before, so it can only spare dead
letters, never lose one; keeping the positions in the target would cost a
write per delete. It follows only tables that have sent updates without all
their columns, and reads source positions only for their deletes and their
partial updates of deleted keys, so other tables cost a set lookup per batch.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import orjson
from confluent_kafka import Message

from cdc.changes import Change, KeyState, KeyValues, TableBatch

# PostgreSQL: the LSN; MariaDB: the transaction's start (file name, file number, offset)
Position = int | tuple[str, int, int]
PositionOf = Callable[[KeyState], Position | None]  # of a key state's last change
# Deleted keys remembered per worker, in two generations of half as many: a
# replay goes back to the last position the source confirmed, seconds of changes.
LIMIT = 100_000


def source_position(source: Any) -> Position | None:
    """A change's place at its source, from the envelope's `source`. MariaDB
    changes of one transaction share theirs: none counts as before another."""
    if not isinstance(source, dict):
        return None
    lsn = source.get("lsn")
    if isinstance(lsn, int):
        return lsn
    file, pos = source.get("file"), source.get("pos")
    if isinstance(file, str) and isinstance(pos, int):
        # binlog files are numbered: mysql-bin.999999 comes before mysql-bin.1000000
        stem, _, number = file.rpartition(".")
        if number.isdigit():
            return (stem, int(number), pos)
    return None


def message_position(value: bytes | None) -> Position | None:
    try:
        envelope = orjson.loads(value or b"null")
    except orjson.JSONDecodeError:
        return None
    return source_position(envelope.get("source")) if isinstance(envelope, dict) else None


def before(earlier: Position, later: Position) -> bool:
    """Whether `earlier` is strictly before `later` at one source (positions of
    two kinds of source, or of two binlog series, are not ordered)."""
    if isinstance(earlier, int) and isinstance(later, int):
        return earlier < later
    if isinstance(earlier, tuple) and isinstance(later, tuple):
        return earlier[0] == later[0] and earlier < later
    return False


def message_positions(changes: Sequence[Change], messages: Mapping[int, Message]) -> PositionOf:
    """Positions read from the Kafka messages (`messages`: by `id` of their
    change) of a batch's `changes`, parsed only for the states asked about."""
    by_offset: dict[tuple[str, int, int], Change] = {}

    def position_of(state: KeyState) -> Position | None:
        last = state.first
        if (last.partition, last.offset) != state.offset:  # the key changed again
            if not by_offset:
                by_offset.update(((c.topic, c.partition, c.offset), c) for c in changes)
            found = by_offset.get((last.topic, *state.offset))
            if found is None:
                return None
            last = found
        msg = messages.get(id(last))
        return None if msg is None else message_position(msg.value())

    return position_of


class ReplayGuard:
    """The deletes one sink worker applied, by topic and key, at their source
    positions; see the module's doc."""

    def __init__(self, limit: int = LIMIT) -> None:
        self._half = max(1, limit // 2)
        self._recent: dict[tuple[str, KeyValues], Position] = {}
        self._older: dict[tuple[str, KeyValues], Position] = {}
        self._followed: set[tuple[str, str]] = set()  # targets sent partial updates

    def mark(self, steps: Sequence[Sequence[TableBatch]], position_of: PositionOf) -> None:
        """Before applying: flag each partial update of a key deleted later as replayed."""
        if not self._recent and not self._older:
            return
        for step in steps:
            for batch in step:
                if not batch.partial:
                    continue
                for key, state in batch.keys.items():
                    if state.complete:
                        continue
                    deleted = self._deleted_at((state.first.topic, key))
                    if deleted is None:
                        continue
                    position = position_of(state)
                    if position is not None and before(position, deleted):
                        state.replayed = True

    def record(self, steps: Sequence[Sequence[TableBatch]], position_of: PositionOf) -> None:
        """Once the batch is committed: remember its deletes, in the tables followed."""
        for step in steps:
            for batch in step:
                if batch.partial:
                    self._followed.add(batch.target)
                elif batch.target not in self._followed:
                    continue
                first = next(iter(batch.keys.values()), None)
                if first is None or first.schema.keyless:
                    continue  # a keyless batch's keys are places in it (`sinks.collapse`)
                for key, state in batch.keys.items():
                    if state.row is None:
                        self._remember((state.first.topic, key), position_of(state))

    def clear(self) -> None:
        self._recent.clear()
        self._older.clear()

    def _deleted_at(self, where: tuple[str, KeyValues]) -> Position | None:
        found = self._recent.get(where)
        return self._older.get(where) if found is None else found

    def _remember(self, where: tuple[str, KeyValues], position: Position | None) -> None:
        if position is None:
            return
        known = self._deleted_at(where)
        if known is not None and not before(known, position):
            return  # a delete published again: the later one stands
        self._recent[where] = position
        if len(self._recent) >= self._half:
            # the oldest half goes at once: popping one key at a time from the
            # front of a dict slows every next pop down
            self._older, self._recent = self._recent, {}
