"""A source TRUNCATE across a table's partitions: applied once, between the
rows that came before it and the rows that came after it, on every partition.

A truncate has no key, so the source sends a copy of it to each partition of
the table's topic. Applying each copy as it comes would be wrong: rows of
one partition written after the TRUNCATE could be applied before another
partition reaches its copy, and that copy would delete them. So each
partition stops at its copy (paused, its offset left on the copy) and
records on the target that it got there (`cdc_truncates`); the partition
that completes the set truncates the table, in the transaction that marks
the truncate done, and every partition then moves past its copy. Sink
workers in other processes hold other partitions: the target is where they
meet. A worker that restarts re-reads its copy and finds the truncate done.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import structlog
from confluent_kafka import Consumer, Message, TopicPartition

from cdc.changes import Change
from cdc.events import Op

log = structlog.get_logger(__name__)

DONE = -1  # the kafka_partition of the row that marks a truncate done


class TruncateTarget(Protocol):
    def truncate_reached(
        self, target: tuple[str, str], truncate_id: str, partition: int, partitions: int
    ) -> bool:
        """Record that `partition` reached the truncate; once all `partitions`
        have, truncate `target` (under the truncate policy) and mark it done,
        in one transaction. Whether it is done."""
        ...


@dataclass(frozen=True, slots=True)
class Held:
    topic: str
    partition: int
    offset: int  # of the partition's copy of the truncate
    truncate_id: str  # the same for every copy: they are one source event
    target: tuple[str, str]


class TruncateBarriers:
    def __init__(self, consumer: Consumer) -> None:
        self._consumer = consumer
        self._held: dict[tuple[str, int], Held] = {}
        self._paused: set[tuple[str, int]] = set()
        self._partitions: dict[str, int] = {}

    @property
    def holding(self) -> bool:
        """Whether a partition waits at a truncate: batches then take the
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
        """`changes` up to each partition's first truncate, and the partitions
        newly stopped at one; each one's next offset is left on its copy
        (`offsets` is updated). Pass them to `settle` once the batch committed:
        a partition counts as arrived only when its rows before the copy are
        on the target."""
        cut = {where: held.offset for where, held in self._held.items()}
        new: list[Held] = []
        for change in changes:
            where = (change.topic, change.partition)
            if change.op is Op.TRUNCATE and where not in cut:
                value = sources[id(change)].value() or b""
                truncate_id = hashlib.sha256(value).hexdigest()[:32]
                new.append(Held(*where, change.offset, truncate_id, change.target))
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

    def settle(self, target: TruncateTarget, arrived: Sequence[Held] = ()) -> None:
        """After a batch committed (the rows of `arrived` before their copies
        are on the target): record the held partitions as arrived; move those
        whose truncate is done past their copy, keep the others paused there."""
        for held in arrived:
            self._held[(held.topic, held.partition)] = held
        for where, held in list(self._held.items()):
            partition = TopicPartition(held.topic, held.partition, held.offset)
            done = target.truncate_reached(
                held.target, held.truncate_id, held.partition, self._count(held.topic)
            )
            if done:
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
