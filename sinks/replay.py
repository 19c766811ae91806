"""Replay: move a sink's stored positions back, so its next run re-applies from there.

The sink resumes from the target's `cdc_offsets` (see `sinks.worker`; read
by `cdc.target_offsets`), so a replay only rewrites those rows, through the
target's own applier (`Applier.apply` with no rows: the offsets alone) and
in one transaction. Applying a change twice yields the same rows, so re-applying
what the target already has is harmless; a replay never moves a position
forward, which would skip changes.

Positions come from a Kafka timestamp (`offsets_for_times`: the first message
at or after it, per partition) or are given per partition. Kafka's message
timestamp is when cdc published the change, at or after its source commit.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from confluent_kafka import Consumer, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient

from cdc.applier import Applier
from cdc.settings import Settings
from cdc.topics import table_topics_pattern

TIMEOUT_S = 30.0
Partition = tuple[str, int]  # (topic, partition)


class ReplayInputError(ValueError):
    """The request cannot be carried out as asked: nothing was changed."""


class SinkRunningError(RuntimeError):
    """The pipeline's consumer group has members: a sink runs and would overwrite the rewind."""


@dataclass(frozen=True)
class Move:
    """One partition's position: `current` is the stored next offset (None:
    never applied, so the sink starts at `earliest`); `new` what it becomes."""

    topic: str
    partition: int
    earliest: int  # the first offset Kafka still holds
    end: int  # the next offset Kafka will write
    current: int | None
    new: int | None
    note: str = ""

    @property
    def effective(self) -> int:
        """Where the sink would start today."""
        return self.current if self.current is not None else self.earliest

    @property
    def changed(self) -> bool:
        return self.new is not None and self.new != self.effective

    @property
    def replayed(self) -> int:
        """Messages the next run reads again."""
        return self.effective - self.new if self.new is not None else 0


def parse_timestamp(text: str) -> int:
    """Epoch milliseconds from epoch ms digits or ISO-8601 (without an offset: UTC)."""
    text = text.strip()
    if re.fullmatch(r"\d+", text):
        return int(text)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ReplayInputError(
            f"--from-timestamp {text!r} is neither epoch milliseconds nor ISO-8601"
            " (for example 2024-05-01T10:00:00Z or 1714557600000)"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


def parse_offsets(text: str) -> dict[tuple[str, int], int]:
    """`topic:partition:offset,...` (the topic may hold colons: the last two fields count)."""
    spec: dict[tuple[str, int], int] = {}
    for item in (part.strip() for part in text.split(",")):
        match = re.fullmatch(r"(.+):(\d+):(\d+)", item)
        if match is None:
            raise ReplayInputError(
                f"--from-offsets item {item!r} is not topic:partition:offset"
                " (for example orders.public.items:0:1500)"
            )
        key = (match.group(1), int(match.group(2)))
        if key in spec:
            raise ReplayInputError(f"--from-offsets names {key[0]}:{key[1]} twice")
        spec[key] = int(match.group(3))
    return spec


class Replay:
    """The Kafka side of a replay for one pipeline: its table topics and their watermarks."""

    def __init__(self, settings: Settings) -> None:
        kafka = settings.kafka
        self.group = settings.consumer_group
        self._prefix = kafka.topic_prefix or settings.name
        self._connection = kafka.client_config()
        # A throwaway group: this consumer only looks things up, it never joins the sink's.
        self._consumer = Consumer(
            {**kafka.consumer_config(f"{self.group}-replay"), "enable.auto.commit": False}
        )

    def partitions(self) -> list[tuple[str, int]]:
        """Every partition of the pipeline's table topics, in name order."""
        pattern = re.compile(table_topics_pattern(self._prefix))
        metadata = self._consumer.list_topics(timeout=TIMEOUT_S)
        return sorted(
            (name, partition)
            for name, topic in metadata.topics.items()
            if pattern.match(name)
            for partition in topic.partitions
        )

    def active_members(self) -> int | None:
        """Members of the sink's consumer group (None: the broker would not say)."""
        admin = AdminClient(self._connection)
        try:
            futures = admin.describe_consumer_groups([self.group], request_timeout=TIMEOUT_S)
            description = futures[self.group].result(timeout=TIMEOUT_S)
        except KafkaException:
            return None
        return len(description.members or [])

    def watermarks(self, partitions: Iterable[Partition]) -> dict[Partition, tuple[int, int]]:
        return {
            (topic, partition): self._consumer.get_watermark_offsets(
                TopicPartition(topic, partition), timeout=TIMEOUT_S
            )
            for topic, partition in partitions
        }

    def from_timestamp(
        self, ts_ms: int, stored: dict[tuple[str, int], int], partitions: Sequence[tuple[str, int]]
    ) -> list[Move]:
        watermarks = self.watermarks(partitions)
        found = self._consumer.offsets_for_times(
            [TopicPartition(t, p, ts_ms) for t, p in partitions], timeout=TIMEOUT_S
        )
        moves = []
        for tp in found:
            key = (tp.topic, tp.partition)
            earliest, end = watermarks[key]
            current = stored.get(key)
            effective = current if current is not None else earliest
            # -1: no message at or after the timestamp, so nothing to re-read
            target = end if tp.offset < 0 else tp.offset
            note = ""
            if target == earliest and earliest > 0:
                note = f"Kafka holds this partition from offset {earliest}: older changes are gone"
            moves.append(
                Move(tp.topic, tp.partition, earliest, end, current, min(effective, target), note)
            )
        return moves

    def from_offsets(
        self,
        spec: dict[tuple[str, int], int],
        stored: dict[tuple[str, int], int],
        partitions: Sequence[tuple[str, int]],
    ) -> list[Move]:
        known = set(partitions)
        unknown = [f"{t}:{p}" for t, p in spec if (t, p) not in known]
        if unknown:
            topics = sorted({t for t, _ in partitions})
            raise ReplayInputError(
                f"not a partition of this pipeline's table topics: {', '.join(unknown)}"
                f" (its topics: {', '.join(topics) or 'none yet'})"
            )
        watermarks = self.watermarks(partitions)
        moves = []
        for key in partitions:
            earliest, end = watermarks[key]
            current = stored.get(key)
            new = spec.get(key)
            move = Move(key[0], key[1], earliest, end, current, new)
            if new is not None and new < earliest:
                raise ReplayInputError(
                    f"{key[0]}:{key[1]}: offset {new} is before the earliest offset Kafka still"
                    f" holds ({earliest}); the changes before it are gone"
                )
            if new is not None and new > move.effective:
                raise ReplayInputError(
                    f"{key[0]}:{key[1]}: offset {new} is past where the sink stands"
                    f" ({move.effective}); a replay only moves back (forward would skip changes)"
                )
            moves.append(move)
        return moves

    def close(self) -> None:
        self._consumer.close()


def stored_offsets(applier: Applier, partitions: Sequence[Partition]) -> dict[Partition, int]:
    return applier.committed_offsets(sorted({t for t, _ in partitions}))


def rewind(applier: Applier, moves: Sequence[Move]) -> int:
    """Store every changed position in one target transaction; how many changed."""
    offsets = {(m.topic, m.partition): m.new for m in moves if m.changed and m.new is not None}
    if offsets:
        applier.apply([], offsets)
    return len(offsets)
