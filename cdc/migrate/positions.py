"""How far each stage of a pipeline got: the source's position, what its table
topics hold, and what the sink applied (the target's `cdc_offsets`); and
`wait_applied`, the wait until the sink applied everything the source had at
a marked moment, which the cut-over, the rollback and verify share.

A point is marked on the source (`Engine.mark`: on PostgreSQL a logical
message whose commit the slot passes once Kafka has every change before it; on
MySQL/MariaDB the binlog position, compared with the one the source stored in
its offsets topic once Kafka had it all).

The sink stores a batch's offsets in the batch's own target transaction, so
once its offsets reach the topics' end offsets read after the source published
the marker, every change up to the marker is applied.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient

from cdc.engine import Sides
from cdc.engine.cutover import Marker, Partition, Published
from cdc.settings import Settings
from cdc.topics import dead_letter_topic, table_topics_pattern

POLL_S = 0.2


def reached(position: Marker | None, marker: Marker) -> bool:
    return position is not None and position.reaches(marker)


class KafkaView:
    """The pipeline's topics as Kafka holds them."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        connection = settings.kafka.client_config()
        self._admin = AdminClient(connection)
        self._consumer = Consumer(
            {
                **connection,
                "group.id": f"cdc-inspect-{uuid.uuid4().hex}",
                "enable.auto.commit": False,
            }
        )

    def close(self) -> None:
        self._consumer.close()

    def table_topics(self) -> list[str]:
        pattern = re.compile(table_topics_pattern(self._settings.kafka.topic_prefix))
        topics = self._admin.list_topics(timeout=30).topics
        return sorted(name for name in topics if pattern.match(name))

    def ends(self) -> dict[Partition, tuple[int, int]]:
        """(low, high) watermark of every partition of the table topics."""
        metadata = self._admin.list_topics(timeout=30).topics
        found = {}
        for topic in self.table_topics():
            for partition in metadata[topic].partitions:
                marks = self._consumer.get_watermark_offsets(
                    TopicPartition(topic, partition), timeout=30
                )
                found[(topic, partition)] = (int(marks[0]), int(marks[1]))
        return found

    def timestamp_at(self, topic: str, partition: int, offset: int) -> float | None:
        """Kafka's timestamp (seconds) of the message at `offset`."""
        self._consumer.assign([TopicPartition(topic, partition, offset)])
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            msg = self._consumer.poll(1)
            if msg is None:
                continue
            error = msg.error()
            if error is None:
                return msg.timestamp()[1] / 1000
            if error.code() != KafkaError._PARTITION_EOF:
                raise KafkaException(error)
        return None

    def dead_letters(self, since: datetime | None) -> int:
        """Messages on `<prefix>.__dlq` (with a Kafka timestamp at or after `since`)."""
        topic = dead_letter_topic(self._settings.kafka.topic_prefix)
        metadata = self._admin.list_topics(timeout=30).topics
        if topic not in metadata:
            return 0
        count = 0
        for partition in metadata[topic].partitions:
            low, high = self._consumer.get_watermark_offsets(
                TopicPartition(topic, partition), timeout=30
            )
            start = low
            if since is not None:
                wanted = TopicPartition(topic, partition, int(since.timestamp() * 1000))
                found = self._consumer.offsets_for_times([wanted], timeout=30)[0].offset
                start = high if found < 0 else max(found, low)
            count += max(0, high - start)
        return count


def behind(
    ends: dict[Partition, tuple[int, int]], done: dict[Partition, int]
) -> dict[Partition, int]:
    """Messages each partition's sink has still to apply (partitions with none left out)."""
    left = {}
    for key, (low, high) in ends.items():
        count = high - max(done.get(key, low), low)
        if count > 0:
            left[key] = count
    return left


@dataclass(frozen=True)
class Applied:
    """What `wait_applied` found when it returned."""

    marker: Marker
    published: bool  # the source put every change up to the marker into Kafka
    ends: dict[Partition, tuple[int, int]] = field(default_factory=dict)
    left: dict[Partition, int] = field(default_factory=dict)  # messages the sink had still

    @property
    def done(self) -> bool:
        return self.published and not self.left


def wait_applied(
    settings: Settings,
    sides: Sides,
    marker: Marker,
    timeout_s: float,
    on_published: Callable[[], None] = lambda: None,
    source: Published | None = None,
) -> Applied:
    """Wait until the source published past `marker` (`Engine.mark`), then until the
    sink applied every message its table topics then held; gives up after `timeout_s`.
    `on_published` is called between the two waits. `source`: a reader the caller
    keeps across waits (verify waits once per round); else one for this wait."""
    deadline = time.monotonic() + timeout_s
    read = source if source is not None else sides.source.published(settings.kafka)
    try:
        while not reached(read(), marker):
            if time.monotonic() > deadline:
                return Applied(marker, published=False)
            time.sleep(POLL_S)
    finally:
        if source is None:
            read.close()
    view = KafkaView(settings)
    try:
        ends = view.ends()
    finally:
        view.close()
    on_published()
    while (
        left := behind(ends, sides.target.applied_offsets(settings.consumer_group))
    ) and time.monotonic() <= deadline:
        time.sleep(POLL_S)
    return Applied(marker, True, ends, left)
