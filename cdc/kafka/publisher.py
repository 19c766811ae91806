"""Publishes a source's stream to Kafka and tracks what Kafka has durably accepted.

Delivery rule: a checkpoint is acknowledged when every message published
before it was acknowledged by the broker (acks=all,
idempotent producer). A failed delivery is never skipped: the publisher turns
fatal, the watermark stays where it was, and the process restarts from it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import structlog
from confluent_kafka import KafkaError, Message, Producer
from prometheus_client import Counter

from cdc import envelope, metrics
from cdc.events import ChangeEvent, Op
from cdc.kafka.admin import COMPACTED, TopicAdmin
from cdc.position import Position
from cdc.schemas import SCHEMA_HEADER, TableSchema
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
    "partitioner": "murmur2_random",
}


class DeliveryError(RuntimeError):
    """Kafka refused or timed out a message: terminal for the process, which
    restarts from the last acknowledged position."""


@dataclass(frozen=True, slots=True)
class TopicLayout:
    prefix: str
    partitions: int
    replication_factor: int


class KafkaPublisher:
    def __init__(
        self,
        bootstrap_servers: str,
        layout: TopicLayout,
        producer_config: Mapping[str, Any] | None = None,
        client_id: str = "cdc",
    ) -> None:
        config = {
            **PRODUCER_DEFAULTS,
            "client.id": client_id,
            **(producer_config or {}),
            "bootstrap.servers": bootstrap_servers,
        }
        self._producer = Producer(config)
        self._admin = TopicAdmin(bootstrap_servers)
        self._layout = layout
        self._watermark: Watermark[Position] = Watermark()
        self._schemas_sent: set[str] = set()
        self._partitions: dict[str, int] = {}
        self._routes: dict[tuple[str, str], str] = {}
        self._headers: dict[str, list[tuple[str, str | bytes | None]]] = {}
        self._error: KafkaError | None = None
        self._counters: dict[tuple[str, Op], Counter] = {}
        # Prometheus takes a lock per update, which costs as much as a produce
        # call: the hot path counts in plain ints, handed over on each poll.
        self._pending_events: dict[tuple[str, Op], int] = {}
        self._pending_delivered = 0
        self._schemas_topic = schemas_topic(layout.prefix)
        self._admin.ensure(self._schemas_topic, 1, layout.replication_factor, COMPACTED)

    # -- publishing -------------------------------------------------------
    def publish(self, item: StreamItem) -> None:
        self.raise_if_failed()
        if isinstance(item, ChangeEvent):
            self._publish_event(item)
        elif isinstance(item, TableSchema):
            self._publish_schema(item)
        elif isinstance(item, Checkpoint):
            self._watermark.mark(item.position)

    def _publish_schema(self, schema: TableSchema) -> None:
        fingerprint = schema.fingerprint
        if fingerprint in self._schemas_sent:
            return
        self._produce(self._schemas_topic, fingerprint.encode(), schema.to_json())
        self._schemas_sent.add(fingerprint)

    def _publish_event(self, event: ChangeEvent) -> None:
        # Per event, only dict lookups: the topic name, its header list and
        # its counter are made once per table (or schema version) and reused.
        topic = self._routes.get((event.schema, event.table))
        if topic is None:
            topic = self._route(event)
        value = envelope.encode_value(event)
        headers = self._headers.get(event.fingerprint)
        if headers is None:
            headers = self._headers[event.fingerprint] = [
                (SCHEMA_HEADER, event.fingerprint.encode())
            ]
        if event.op is Op.TRUNCATE:
            # A truncate has no key: every partition gets it, so it stays in
            # order with each partition's rows.
            for partition in range(self._partitions[topic]):
                self._produce(topic, None, value, headers, partition)
        else:
            key = envelope.encode_key(event)
            self._produce(topic, key, value, headers)
            if event.op is Op.DELETE:
                # the tombstone lets compaction drop the key entirely
                self._produce(topic, key, None)
        counted = (topic, event.op)
        pending = self._pending_events
        pending[counted] = pending.get(counted, 0) + 1
        if counted not in self._counters:
            table = f"{event.schema}.{event.table}"
            self._counters[counted] = metrics.SOURCE_EVENTS.labels(table=table, op=event.op.value)

    def _route(self, event: ChangeEvent) -> str:
        """The table's topic, created on first use."""
        topic = table_topic(self._layout.prefix, event.schema, event.table)
        if topic not in self._partitions:
            layout = self._layout
            self._admin.ensure(topic, layout.partitions, layout.replication_factor)
            self._partitions[topic] = self._admin.partitions(topic)
        self._routes[(event.schema, event.table)] = topic
        return topic

    def _produce(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        headers: list[tuple[str, str | bytes | None]] | None = None,
        partition: int = -1,
    ) -> None:
        ticket = self._watermark.track(None)

        def on_delivery(err: KafkaError | None, _msg: Message) -> None:
            if err is None:
                self._watermark.delivered(ticket)
                self._pending_delivered += 1
            else:
                metrics.KAFKA_DELIVERY_ERRORS.inc()
                if self._error is None:
                    self._error = err
                    log.error("kafka_delivery_failed", topic=topic, error=err.str())

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
                break
            except BufferError:
                # the local queue is full: serve delivery reports to make room
                self._producer.poll(0.1)

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
        return remaining == 0 and self._watermark.in_flight == 0

    def _update_metrics(self) -> None:
        metrics.KAFKA_IN_FLIGHT.set(self._watermark.in_flight)
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
        return self._watermark.in_flight
