"""Table-wide events across a table's partitions: a source TRUNCATE, DROP
TABLE or RENAME TABLE is carried out once, between the rows that came before
it and the rows that came after it, on every partition.

Such an event has no key, so the source sends a copy of it to each partition
of the table's topic (a rename also to each partition of the new name's
topic, ahead of the rows written under that name). Applying each copy as it
comes would be wrong: rows of one partition written after a TRUNCATE could
be applied before another partition reaches its copy, and that copy would
delete them; rows under a new name could land before the old table is
renamed to it. So each partition stops at its copy (paused, its offset left
on the copy) and records on the target that it got there (`cdc_truncates`,
named for the first such event); the partition that completes the set
carries the event out, in the transaction that marks it done, and every
partition then moves past its copy. Sink workers in other processes hold
other partitions: the target is where they meet. A worker that restarts
re-reads its copy and finds the event done.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import structlog
from confluent_kafka import Consumer, Message, TopicPartition

from cdc.changes import Change, TableEvent
from cdc.events import TABLE_OPS, Op
from cdc.topics import table_topic

log = structlog.get_logger(__name__)

DONE = -1  # the kafka_partition of the row that marks an event done


class BarrierTarget(Protocol):
    def table_event_reached(self, event: TableEvent, partition: int, partitions: int) -> bool:
        """Record that `partition` (numbered across the event's topics) reached
        `event`; once all `partitions` have, carry it out (under the
        schema_changes policy) and mark it done, in one transaction. Whether
        it is done."""
        ...


@dataclass(frozen=True, slots=True)
class Held:
    topic: str
    partition: int
    offset: int  # of the partition's copy of the event
    event: TableEvent
    index: int  # the partition's number across the event's topics
    partitions: int  # how many copies the event has


class TableBarriers:
    def __init__(
        self,
        consumer: Consumer,
        prefix: str,
        renamed_target: Callable[[Change], tuple[str, str]],
    ) -> None:
        """`renamed_target`: a rename's new target table (the transforms may map it)."""
        self._consumer = consumer
        self._prefix = prefix
        self._renamed_target = renamed_target
        self._held: dict[tuple[str, int], Held] = {}
        self._paused: set[tuple[str, int]] = set()
        self._partitions: dict[str, int] = {}

    @property
    def holding(self) -> bool:
        """Whether a partition waits at an event: batches then take the
        planned path, which leaves out what it fetched after its copy."""
        return bool(self._held)

    def clear(self) -> None:
        """On a new assignment: held partitions are read again from the
        target's offsets, which stop at their copies."""
        self._held.clear()
        self._paused.clear()

    def hold(
        self,
        changes: Sequence[Change],
        offsets: dict[tuple[str, int], int],
        sources: dict[int, Message],
    ) -> tuple[list[Change], list[Held]]:
        """`changes` up to each partition's first table-wide event, and the
        partitions newly stopped at one; each one's next offset is left on its
        copy (`offsets` is updated). Pass them to `settle` once the batch
        committed: a partition counts as arrived only when its rows before the
        copy are on the target."""
        cut = {where: held.offset for where, held in self._held.items()}
        new: list[Held] = []
        for change in changes:
            where = (change.topic, change.partition)
            if change.op in TABLE_OPS and where not in cut:
                new.append(self._held_at(change, sources[id(change)].value() or b""))
                cut[where] = change.offset
        if not cut:
            return list(changes), new
        for where, offset in cut.items():
            if where in offsets:
                offsets[where] = min(offsets[where], offset)
        kept = [
            c
            for c in changes
            if (c.topic, c.partition) not in cut or c.offset < cut[(c.topic, c.partition)]
        ]
        return kept, new

    def _held_at(self, change: Change, value: bytes) -> Held:
        source = change.schema
        event = TableEvent(
            change.op,
            f"{source.schema}.{source.table}",
            change.target,
            hashlib.sha256(value).hexdigest()[:32],  # every copy carries the same bytes
            self._renamed_target(change) if change.op is Op.RENAME else None,
        )
        index, partitions = change.partition, self._count(change.topic)
        if change.op is Op.RENAME:
            # the old name's partitions, then the new name's
            old = table_topic(self._prefix, source.schema, source.table)
            before = self._count(old)
            if change.topic != old:
                index += before
            new = change.topic if change.topic != old else self._new_topic(change)
            partitions = before + self._count(new)
        return Held(change.topic, change.partition, change.offset, event, index, partitions)

    def _new_topic(self, change: Change) -> str:
        assert change.renamed_to is not None
        return table_topic(self._prefix, *change.renamed_to)

    def settle(self, target: BarrierTarget, arrived: Sequence[Held] = ()) -> None:
        """After a batch committed (the rows of `arrived` before their copies
        are on the target): record the held partitions as arrived; move those
        whose event is done past their copy, keep the others paused there."""
        for held in arrived:
            self._held[(held.topic, held.partition)] = held
        for where, held in list(self._held.items()):
            partition = TopicPartition(held.topic, held.partition, held.offset)
            if target.table_event_reached(held.event, held.index, held.partitions):
                self._consumer.seek(TopicPartition(held.topic, held.partition, held.offset + 1))
                self._consumer.resume([partition])
                del self._held[where]
                self._paused.discard(where)
                continue
            if where not in self._paused:
                # what was fetched after the copy is read again once it is done
                self._consumer.pause([partition])
                self._consumer.seek(partition)
                self._paused.add(where)

    def _count(self, topic: str) -> int:
        found = self._partitions.get(topic)
        if found is None:
            metadata = self._consumer.list_topics(topic, timeout=10).topics[topic]
            found = self._partitions[topic] = len(metadata.partitions)
        return found
