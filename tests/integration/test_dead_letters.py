"""A dead letter on a real broker: the message lands on `<prefix>.__dlq` whole, with
where it came from, and one log line names its table, key, source position, reason
and offset; met again (a batch applied again, in this process or in the next one after
a crash), it is neither sent nor counted twice."""

from __future__ import annotations

import time

import orjson
from confluent_kafka import Consumer, Message, Producer, TopicPartition
from structlog.testing import capture_logs

from cdc import metrics
from cdc.kafka.admin import TopicAdmin
from sinks.dead_letters import DeadLetters


def _read_one(bootstrap: str, topic: str) -> Message:
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"test-dlq-{time.time_ns()}",
            "auto.offset.reset": "earliest",
        }
    )
    consumer.subscribe([topic])
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            msg = consumer.poll(1)
            if msg is not None and msg.error() is None:
                return msg
        raise AssertionError(f"nothing on {topic}")
    finally:
        consumer.close()


def test_a_dead_letter_is_kept_whole_and_logged_once(
    kafka_bootstrap: str, topic_prefix: str
) -> None:
    topic = f"{topic_prefix}.public.t"
    value = orjson.dumps(
        {"before": None, "after": {"id": 7}, "op": "c", "ts_ms": 1, "source": {"lsn": 4242}}
    )
    TopicAdmin(kafka_bootstrap).ensure(topic, 1, 1)
    producer = Producer({"bootstrap.servers": kafka_bootstrap})
    producer.produce(topic, value, b'{"id": 7}', headers=[("cdc.schema", b"abc")])
    producer.flush(30)
    event = _read_one(kafka_bootstrap, topic)

    dead = DeadLetters(kafka_bootstrap, topic_prefix, 1)
    counted = metrics.DLQ_EVENTS.labels(table="public.t", reason="apply")._value.get()
    with capture_logs() as logs:
        dead.send(event, "public.t", "apply", 'null value in column "v" violates not-null')
        dead.flush()
        # the batch applied again after a failure meets it again: not a second one
        dead.send(event, "public.t", "apply", 'null value in column "v" violates not-null')
        dead.flush()
    assert metrics.DLQ_EVENTS.labels(table="public.t", reason="apply")._value.get() == counted + 1
    assert [
        (e["event"], e["table"], e["key"], e["position"], e["reason"], e["offset"]) for e in logs
    ] == [("dead_lettered", "public.t", '{"id": 7}', "4242", "apply", event.offset())]
    assert "not-null" in logs[0]["error"]

    letter = _read_one(kafka_bootstrap, dead.topic)
    headers = {k: v for k, v in letter.headers() or []}
    assert (letter.key(), letter.value()) == (event.key(), event.value())
    assert headers["cdc.schema"] == b"abc"
    assert headers["cdc.reason"] == b"apply"
    assert headers["cdc.offset"] == str(event.offset()).encode()

    # the next process (a sink restarted after a crash, before the batch's offsets were
    # committed) meets it again: the topic has it, so not a second one either
    again = DeadLetters(kafka_bootstrap, topic_prefix, 1)
    again.send(event, "public.t", "apply", 'null value in column "v" violates not-null')
    again.flush()
    assert metrics.DLQ_EVENTS.labels(table="public.t", reason="apply")._value.get() == counted + 1
    low, high = _watermarks(kafka_bootstrap, dead.topic)
    assert high - low == 1, "the dead letter was written twice"


def _watermarks(bootstrap: str, topic: str) -> tuple[int, int]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"w-{time.time_ns()}"})
    try:
        low, high = consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=30)
        return int(low), int(high)
    finally:
        consumer.close()
