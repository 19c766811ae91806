"""Publishes a source's stream to Kafka and tracks what Kafka has durably accepted.

Delivery rule: a checkpoint is acknowledged when every message published
before it was acknowledged by the broker (acks=all,
idempotent producer). A failed delivery is never skipped: the publisher turns
fatal, the watermark stays where it was, and the process restarts from it.

The messages between two checkpoints (a transaction, a snapshot chunk) form
one `_Segment` on the watermark: a delivery report only counts down its
segment, so the bookkeeping per message is one decrement, not a watermark entry.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import structlog
from confluent_kafka import KafkaError, KafkaException, Message, Producer
from prometheus_client import Counter

from cdc import envelope, metrics
from cdc.errors import SetupError, TerminalError
from cdc.events import TABLE_OPS, ChangeEvent, EncodedChanges, Op
from cdc.kafka.admin import COMPACTED, TopicAdmin
from cdc.kafka.connection import KafkaConnection, client_config
from cdc.position import Position
from cdc.schemas import SCHEMA_HEADER, TableSchema
from cdc.settings_kafka import DEFAULT_MAX_MESSAGE_BYTES, MESSAGE_HEADROOM
from cdc.source import Checkpoint, StreamItem
from cdc.topics import schemas_topic, table_topic
from cdc.watermark import Watermark

log = structlog.get_logger(__name__)

# Tuned for throughput without giving up durability or per-key order: the
# idempotent producer keeps order across retries with up to 5 requests in
# flight; lz4 is the cheapest codec per byte saved; murmur2 is the Java
# client's partitioner, so Java consumers and producers agree on key placement.
PRODUCER_DEFAULTS: dict[str, Any] = {
    "enable.idempotence": True,
    "acks": "all",
    "max.in.flight.requests.per.connection": 5,
    "compression.type": "lz4",
    "linger.ms": 20,
    "batch.size": 1_000_000,
    "batch.num.messages": 10_000,
    "queue.buffering.max.messages": 500_000,
    # A snapshot reads faster than Kafka acknowledges: past 64 MB waiting in
    # the producer, publishing waits (librdkafka's default, 1 GB, is the
    # process's memory to the next OOM kill).
    "queue.buffering.max.kbytes": 65_536,
    "partitioner": "murmur2_random",
}


Headers = list[tuple[str, str | bytes | None]]


class _Segment:
    """The messages published since the last checkpoint: its watermark entry
    is delivered once the segment is closed (the next checkpoint came) and
    Kafka acknowledged every message in it."""

    __slots__ = ("_publisher", "closed", "left", "ticket")

    def __init__(self, publisher: KafkaPublisher) -> None:
        self._publisher = publisher
        self.ticket = publisher._watermark.track(None)
        self.left = 0
        self.closed = False

    def on_delivery(self, err: KafkaError | None, msg: Message) -> None:
        publisher = self._publisher
        if err is not None:
            publisher._failed(err, msg)
            return
        publisher._in_flight -= 1
        publisher._pending_delivered += 1
        self.left -= 1
        if self.closed and not self.left:
            publisher._watermark.delivered(self.ticket)

    def close(self) -> None:
        self.closed = True
        if not self.left:
            self._publisher._watermark.delivered(self.ticket)


class DeliveryError(TerminalError):
    """Kafka refused or timed out a message: terminal for the process, which
    restarts from the last acknowledged position. Not transient: the publisher
    stays failed, so that no checkpoint after the lost message is acknowledged."""

    def __init__(self, message: str) -> None:
        super().__init__(
            message,
            "fix what Kafka reports; a restart resumes from the last position Kafka acknowledged",
        )


@dataclass(frozen=True, slots=True)
class TopicLayout:
    prefix: str
    partitions: int
    replication_factor: int
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES


class KafkaPublisher:
    def __init__(
        self,
        connection: KafkaConnection,
        layout: TopicLayout,
        producer_config: Mapping[str, Any] | None = None,
        client_id: str = "cdc",
    ) -> None:
        config = {
            **PRODUCER_DEFAULTS,
            "message.max.bytes": layout.max_message_bytes + MESSAGE_HEADROOM,
            "client.id": client_id,
            **(producer_config or {}),
            **client_config(connection),
        }
        self._producer = Producer(config)
        self._admin = TopicAdmin(connection)
        self._layout = layout
        self._watermark: Watermark[Position] = Watermark()
        self._schemas_sent: set[str] = set()
        self._partitions: dict[str, int] = {}
        self._routes: dict[tuple[str, str], str] = {}
        self._headers: dict[str, Headers] = {}
        self._error: KafkaError | None = None
        self._segment: _Segment | None = None
        self._in_flight = 0
        self._counters: dict[tuple[str, Op], Counter] = {}
        # Prometheus takes a lock per update, which costs as much as a produce
        # call: the hot path counts in plain ints, handed over on each poll.
        self._pending_events: dict[tuple[str, Op], int] = {}
        self._pending_delivered = 0
        self._schemas_topic = schemas_topic(layout.prefix)
        self._admin.ensure(self._schemas_topic, 1, layout.replication_factor, COMPACTED)

    # -- publishing -------------------------------------------------------
    def publish(self, item: StreamItem) -> int:
        """Publish one stream item; returns how many row messages it produced."""
        self.raise_if_failed()
        if type(item) is EncodedChanges:
            return self._publish_encoded(item)
        if isinstance(item, ChangeEvent):
            return self._publish_event(item)
        if isinstance(item, TableSchema):
            self._publish_schema(item)
        elif isinstance(item, Checkpoint):
            if self._segment is not None:
                self._segment.close()
                self._segment = None
            self._watermark.mark(item.position)
        return 0

    def _publish_schema(self, schema: TableSchema) -> None:
        fingerprint = schema.fingerprint
        if fingerprint in self._schemas_sent:
            return
        self._produce(self._schemas_topic, fingerprint.encode(), schema.to_json())
        self._schemas_sent.add(fingerprint)

    def _publish_event(self, event: ChangeEvent) -> int:
        value = envelope.encode_value(event)
        if event.op not in TABLE_OPS:
            key = envelope.encode_key(event)
            assert key is not None, "every row change has a key"
            changes = EncodedChanges(
                event.schema, event.table, event.fingerprint, [(event.op, key, value)]
            )
            return self._publish_encoded(changes)
        # A table-wide event has no key: every partition gets it, so it stays
        # in order with each partition's rows. A rename goes to the new name's
        # partitions too, ahead of the rows written under that name.
        topics = [self._topic(event.schema, event.table)]
        if event.op is Op.RENAME:
            assert event.after is not None, "a rename names the table's new name"
            topics.append(self._topic(event.after["schema"], event.after["table"]))
        headers = self._headers_of(event.fingerprint)
        for topic in topics:
            for partition in range(self._partitions[topic]):
                self._produce(topic, None, value, headers, partition)
        self._count(topics[0], event.schema, event.table, event.op, 1)
        return 1

    def _publish_encoded(self, changes: EncodedChanges) -> int:
        topic = self._topic(changes.schema, changes.table)
        headers = self._headers_of(changes.fingerprint)
        segment = self._segment or self._open_segment()
        on_delivery = segment.on_delivery
        produce = self._producer.produce
        counts: dict[Op, int] = {}
        sent = 0
        # The hot loop of the whole source: locals only, one produce per
        # message, delivery reports counted per segment. Arguments by
        # position (topic, value, key, partition, on_delivery, callback,
        # timestamp, headers): parsing keywords costs confluent-kafka a
        # quarter of the call. Partition -1: the partitioner's; timestamp 0: now.
        for op, key, value in changes.messages:
            try:
                produce(topic, value, key, -1, on_delivery, None, 0, headers)
            except BufferError:
                self._produce_waiting(topic, value, key, on_delivery, headers)
            except KafkaException as exc:
                raise self._refused(exc, changes, key, value) from None
            sent += 1
            if op is Op.DELETE:
                # the tombstone lets compaction drop the key entirely
                try:
                    produce(topic, None, key, on_delivery=on_delivery)
                except BufferError:
                    self._produce_waiting(topic, None, key, on_delivery, None)
                sent += 1
            counts[op] = counts.get(op, 0) + 1
        segment.left += sent
        self._in_flight += sent
        for op, count in counts.items():
            self._count(topic, changes.schema, changes.table, op, count)
        return len(changes.messages)

    def _refused(
        self, exc: KafkaException, changes: EncodedChanges, key: bytes, value: bytes
    ) -> Exception:
        """What to raise for a message the producer refused outright."""
        error = exc.args[0] if exc.args else None
        if not isinstance(error, KafkaError) or error.code() != KafkaError.MSG_SIZE_TOO_LARGE:
            return exc
        limit = self._layout.max_message_bytes
        shown = key[:200].decode(errors="replace")
        return SetupError(
            f"a change of {changes.schema}.{changes.table} (key {shown}) is {len(value)}"
            f" bytes as JSON, above kafka.max_message_bytes ({limit})",
            "raise kafka.max_message_bytes (up to 100000000; cdc raises its topics'"
            " max.message.bytes to match when it starts), or make the row smaller",
        )

    def _open_segment(self) -> _Segment:
        self._segment = _Segment(self)
        return self._segment

    def _topic(self, schema: str, table: str) -> str:
        """The table's topic, created on first use."""
        topic = self._routes.get((schema, table))
        if topic is None:
            topic = table_topic(self._layout.prefix, schema, table)
            if topic not in self._partitions:
                layout = self._layout
                size = {"max.message.bytes": str(layout.max_message_bytes + MESSAGE_HEADROOM)}
                self._admin.ensure(topic, layout.partitions, layout.replication_factor, size)
                self._partitions[topic] = self._admin.partitions(topic)
            self._routes[(schema, table)] = topic
        return topic

    def _headers_of(self, fingerprint: str) -> Headers:
        headers = self._headers.get(fingerprint)
        if headers is None:
            headers = self._headers[fingerprint] = [(SCHEMA_HEADER, fingerprint.encode())]
        return headers

    def _count(self, topic: str, schema: str, table: str, op: Op, count: int) -> None:
        counted = (topic, op)
        self._pending_events[counted] = self._pending_events.get(counted, 0) + count
        if counted not in self._counters:
            self._counters[counted] = metrics.SOURCE_EVENTS.labels(
                table=f"{schema}.{table}", op=op.value
            )

    def _produce(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        headers: Headers | None = None,
        partition: int = -1,
    ) -> None:
        segment = self._segment or self._open_segment()
        self._produce_waiting(topic, value, key, segment.on_delivery, headers, partition)
        segment.left += 1
        self._in_flight += 1

    def _produce_waiting(
        self,
        topic: str,
        value: bytes | None,
        key: bytes | None,
        on_delivery: Callable[[KafkaError | None, Message], None],
        headers: Headers | None,
        partition: int = -1,
    ) -> None:
        while True:
            try:
                self._producer.produce(
                    topic,
                    value,
                    key,
                    partition=partition,
                    on_delivery=on_delivery,
                    headers=headers,
                )
                return
            except BufferError:
                # the local queue is full: serve delivery reports to make room
                self._producer.poll(0.1)

    def _failed(self, err: KafkaError, msg: Message) -> None:
        metrics.KAFKA_DELIVERY_ERRORS.inc()
        if self._error is None:
            self._error = err
            log.error("kafka_delivery_failed", topic=msg.topic(), error=err.str())

    # -- delivery ---------------------------------------------------------
    def poll(self, timeout: float = 0.0) -> None:
        """Serve delivery callbacks; call it often from the publishing thread."""
        self._producer.poll(timeout)
        self._update_metrics()
        self.raise_if_failed()

    def flush(self, timeout: float) -> bool:
        """Wait until everything published is delivered; False if time ran out."""
        remaining = self._producer.flush(timeout)
        self._update_metrics()
        self.raise_if_failed()
        return remaining == 0 and self._in_flight == 0

    def _update_metrics(self) -> None:
        metrics.KAFKA_IN_FLIGHT.set(self._in_flight)
        if self._pending_delivered:
            metrics.KAFKA_DELIVERED.inc(self._pending_delivered)
            self._pending_delivered = 0
        if self._pending_events:
            for counted, count in self._pending_events.items():
                self._counters[counted].inc(count)
            self._pending_events.clear()

    def raise_if_failed(self) -> None:
        if self._error is not None:
            raise DeliveryError(f"Kafka did not accept a message: {self._error.str()}")

    def drain_acknowledged(self) -> list[Position]:
        """Checkpoints whose messages, and all before them, Kafka has accepted;
        each is returned once, in order. The source may acknowledge them."""
        return self._watermark.drain()

    @property
    def acknowledged(self) -> Position | None:
        """The latest checkpoint passed (see the module docstring)."""
        return self._watermark.acknowledged

    @property
    def in_flight(self) -> int:
        """Messages published and not yet acknowledged by Kafka."""
        return self._in_flight
