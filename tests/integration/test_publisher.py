"""The publisher against the real broker: round trip, schemas, tombstones, and
a broker outage in the middle with nothing lost and nothing acknowledged early."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import orjson
import pytest
from confluent_kafka import Consumer, Message
from confluent_kafka.admin import AdminClient, NewTopic

from cdc import envelope
from cdc.events import ChangeEvent, Op
from cdc.kafka.publisher import DeliveryError, KafkaPublisher, TopicLayout
from cdc.schemas import SCHEMA_HEADER, Column, TableSchema
from cdc.source import Checkpoint
from cdc.topics import schemas_topic, table_topic
from tests.integration.conftest import services

SCHEMA = TableSchema(
    connector="postgresql",
    schema="public",
    table="items",
    columns=(Column("id", "bigint", nullable=False), Column("name", "text")),
    key=("id",),
)


@dataclass(frozen=True, order=True)
class Seq:
    n: int

    def to_json(self) -> dict[str, Any]:
        return {"n": self.n}


def event(n: int, op: Op = Op.CREATE, key: int | None = None) -> ChangeEvent:
    row = {"id": n if key is None else key, "name": f"row {n}"}
    return ChangeEvent(
        op=op,
        schema="public",
        table="items",
        key={"id": row["id"]},
        before=row if op is Op.DELETE else None,
        after=None if op is Op.DELETE else row,
        ts_ms=1_700_000_000_000 + n,
        position=Seq(n),
        fingerprint=SCHEMA.fingerprint,
        source={"connector": "postgresql", "db": "app"},
    )


def table_event(op: Op, at: int, after: dict[str, str] | None = None) -> ChangeEvent:
    """A table-wide event (no key) of public.items at position `at`."""
    return ChangeEvent(
        op=op,
        schema="public",
        table="items",
        key=None,
        before=None,
        after=after,
        ts_ms=1,
        position=Seq(at),
        fingerprint=SCHEMA.fingerprint,
    )


def consume_all(bootstrap: str, topic: str, expected: int, timeout: float = 60) -> list[Message]:
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"reader-{topic}-{time.time_ns()}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([topic])
    messages: list[Message] = []
    deadline = time.monotonic() + timeout
    try:
        while len(messages) < expected and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is not None and msg.error() is None:
                messages.append(msg)
        # anything beyond `expected` would be a duplicate: read a little longer
        extra_deadline = time.monotonic() + 2
        while time.monotonic() < extra_deadline:
            msg = consumer.poll(0.2)
            if msg is not None and msg.error() is None:
                messages.append(msg)
    finally:
        consumer.close()
    return messages


def publisher(bootstrap: str, prefix: str, partitions: int = 3) -> KafkaPublisher:
    return KafkaPublisher(bootstrap, TopicLayout(prefix, partitions, 1))


def test_round_trip_with_schema_and_tombstone(kafka_bootstrap: str, topic_prefix: str) -> None:
    pub = publisher(kafka_bootstrap, topic_prefix)
    pub.publish(SCHEMA)
    for n in range(1, 101):
        pub.publish(event(n))
    pub.publish(event(101, Op.DELETE, key=7))
    pub.publish(Checkpoint(Seq(102)))
    assert pub.flush(30)
    assert pub.acknowledged == Seq(102)

    topic = table_topic(topic_prefix, "public", "items")
    messages = consume_all(kafka_bootstrap, topic, expected=102)
    assert len(messages) == 102  # 100 inserts, the delete and its tombstone
    by_key: dict[int, list[Message]] = {}
    for msg in messages:
        by_key.setdefault(orjson.loads(msg.key())["id"], []).append(msg)
    deleted = by_key[7]
    assert [m.value() is None for m in deleted] == [False, False, True]
    delete = envelope.decode_value(deleted[1].value())
    assert delete.op is Op.DELETE
    assert delete.before == {"id": 7, "name": "row 101"}
    # every row of one key sits in one partition
    assert len({m.partition() for m in deleted}) == 1

    first = envelope.decode_value(by_key[1][0].value())
    assert first.after == {"id": 1, "name": "row 1"}
    assert first.source["table"] == "items"
    assert first.source["ts_ms"] == 1_700_000_000_001
    assert dict(by_key[1][0].headers() or [])[SCHEMA_HEADER] == SCHEMA.fingerprint.encode()

    schema_msgs = consume_all(kafka_bootstrap, schemas_topic(topic_prefix), expected=1)
    assert len(schema_msgs) == 1
    assert schema_msgs[0].key() == SCHEMA.fingerprint.encode()
    assert TableSchema.from_json(schema_msgs[0].value()) == SCHEMA


def test_truncate_reaches_every_partition(kafka_bootstrap: str, topic_prefix: str) -> None:
    pub = publisher(kafka_bootstrap, topic_prefix, partitions=3)
    truncate = table_event(Op.TRUNCATE, 1)
    pub.publish(truncate)
    assert pub.flush(30)
    messages = consume_all(kafka_bootstrap, table_topic(topic_prefix, "public", "items"), 3)
    assert sorted(m.partition() for m in messages) == [0, 1, 2]
    assert {envelope.decode_value(m.value()).op for m in messages} == {Op.TRUNCATE}


def test_rename_reaches_every_partition_of_the_old_and_the_new_name(
    kafka_bootstrap: str, topic_prefix: str
) -> None:
    pub = publisher(kafka_bootstrap, topic_prefix, partitions=3)
    pub.publish(SCHEMA)
    pub.publish(event(1))
    rename = table_event(Op.RENAME, 2, after={"schema": "sales", "table": "goods"})
    pub.publish(rename)
    assert pub.flush(30)
    old = consume_all(kafka_bootstrap, table_topic(topic_prefix, "public", "items"), 4)
    new = consume_all(kafka_bootstrap, table_topic(topic_prefix, "sales", "goods"), 3)
    renames = [m for m in old if m.key() is None]
    assert sorted(m.partition() for m in renames) == [0, 1, 2]
    assert sorted(m.partition() for m in new) == [0, 1, 2]
    # one event: the same bytes everywhere, so the sink meets it as one
    assert len({m.value() for m in renames + new}) == 1
    decoded = envelope.decode_value(new[0].value())
    assert decoded.op is Op.RENAME
    assert decoded.after == {"schema": "sales", "table": "goods"}
    # after the row written under the old name, on its partition
    row = next(m for m in old if m.key() is not None)
    assert row.offset() < next(m.offset() for m in renames if m.partition() == row.partition())


def test_broker_outage_loses_nothing_and_acknowledges_nothing_early(
    kafka_bootstrap: str, topic_prefix: str
) -> None:
    pub = publisher(kafka_bootstrap, topic_prefix)
    pub.publish(SCHEMA)
    for n in range(1, 501):
        pub.publish(event(n))
    pub.publish(Checkpoint(Seq(500)))
    assert pub.flush(30)
    assert pub.acknowledged == Seq(500)

    services("stop", "kafka")
    try:
        for n in range(501, 1001):
            pub.publish(event(n))
            if n % 100 == 0:
                pub.publish(Checkpoint(Seq(n)))
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            pub.poll(0.2)
            # not one of the new events may count as delivered while the broker is down
            assert pub.acknowledged == Seq(500)
        assert pub.in_flight == 500
        assert pub.drain_acknowledged() == [Seq(500)]
    finally:
        services("start", "kafka")

    assert pub.flush(120)
    assert pub.acknowledged == Seq(1000)
    assert pub.drain_acknowledged() == [Seq(600), Seq(700), Seq(800), Seq(900), Seq(1000)]
    messages = consume_all(kafka_bootstrap, table_topic(topic_prefix, "public", "items"), 1000)
    ids = sorted(orjson.loads(m.key())["id"] for m in messages)
    assert ids == list(range(1, 1001))  # none lost, none duplicated


def test_a_refused_message_stops_the_publisher_and_acknowledges_nothing(
    kafka_bootstrap: str, topic_prefix: str
) -> None:
    # the table's topic made by hand, compacted: it refuses a message without a key
    topic = table_topic(topic_prefix, "public", "items")
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    config = {"cleanup.policy": "compact"}
    admin.create_topics([NewTopic(topic, 3, 1, config=config)])[topic].result(30)
    pub = publisher(kafka_bootstrap, topic_prefix)
    pub.publish(SCHEMA)
    pub.publish(Checkpoint(Seq(0)))
    assert pub.flush(30)
    truncate = table_event(Op.TRUNCATE, 1)
    pub.publish(truncate)
    pub.publish(Checkpoint(Seq(1)))
    with pytest.raises(DeliveryError, match="Kafka did not accept a message"):
        pub.flush(30)
    assert pub.acknowledged == Seq(0)
    assert pub.drain_acknowledged() == [Seq(0)]
