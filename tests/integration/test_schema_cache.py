"""The sink's schema lookup on a real broker: a fingerprint missing from the
`__schemas` topic costs one wait, not one per message that names it, and a schema
that arrives later is found."""

from __future__ import annotations

import time

import pytest
from confluent_kafka import Producer

from cdc.errors import TransientError
from cdc.kafka.admin import COMPACTED, TopicAdmin
from cdc.schemas import Column, TableSchema
from cdc.topics import schemas_topic
from sinks.schema_cache import SchemaCache

WAIT_S = 2.0


def test_a_missing_schema_is_waited_for_once(kafka_bootstrap: str, topic_prefix: str) -> None:
    topic = schemas_topic(topic_prefix)
    TopicAdmin(kafka_bootstrap).ensure(topic, 1, 1, COMPACTED)
    schema = TableSchema("postgresql", "public", "t", (Column("id", "integer"),), ("id",))
    known = schema.fingerprint.encode()
    producer = Producer({"bootstrap.servers": kafka_bootstrap})
    producer.produce(topic, key=known, value=schema.to_json())
    producer.flush(30)

    cache = SchemaCache(kafka_bootstrap, topic_prefix)
    try:
        assert cache.get(known, timeout=30) == schema
        started = time.monotonic()
        with pytest.raises(TransientError):
            cache.get(b"0123456789abcdef", timeout=WAIT_S)
        assert time.monotonic() - started >= WAIT_S
        # the next messages naming it are dead-lettered without another wait
        started = time.monotonic()
        for _ in range(20):
            with pytest.raises(TransientError):
                cache.get(b"0123456789abcdef", timeout=WAIT_S)
        assert time.monotonic() - started < WAIT_S

        late = TableSchema(
            "postgresql", "public", "t", (*schema.columns, Column("v", "text")), ("id",)
        )
        producer.produce(topic, key=b"0123456789abcdef", value=late.to_json())
        producer.flush(30)
        deadline = time.monotonic() + 30
        while True:
            try:
                assert cache.get(b"0123456789abcdef", timeout=WAIT_S) == late
                break
            except TransientError:
                assert time.monotonic() < deadline, "the late schema was never found"
                time.sleep(0.2)
    finally:
        cache.close()
