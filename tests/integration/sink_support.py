"""What the sink reliability, conflict and replay tests share: comparing a
target with its source, the sink's stored positions, a sink as a child process."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import orjson
import psycopg
import yaml
from confluent_kafka import Consumer, Message, TopicPartition

from cdc.settings import Settings
from tests.integration.daemon_process import DaemonProcess
from tests.integration.pipeline import wait_until, write_config

Positions = dict[tuple[str, int], int]


# A sink killed with -9 that is not started again under its member id (another
# sink.instance_id, another host) stays in its group until its session times out:
# the other sinks wait that long for its partitions.
QUICK_GROUP = {"session.timeout.ms": 6000, "heartbeat.interval.ms": 1000}


def with_kafka_consumer(config: Path, consumer: dict[str, Any]) -> Settings:
    """Add librdkafka consumer settings to a pipeline file written by pg_pipeline."""
    raw = yaml.safe_load(config.read_text())
    raw["kafka"]["consumer"] = consumer
    return write_config(config, raw)


def table_digest(dsn: str, table: str, key: str = "id") -> tuple[int, str]:
    """Row count and an md5 over every row's canonical text, in key order: equal
    digests mean equal rows, value for value."""
    with psycopg.connect(dsn) as conn:
        row = conn.execute(
            f"SELECT count(*), coalesce(md5(string_agg(t::text, '|' ORDER BY {key})), '')"
            f" FROM {table} t"
        ).fetchone()
    assert row is not None
    return row[0], row[1]


def rows_by_id(dsn: str, table: str) -> dict[int, tuple[Any, ...]]:
    with psycopg.connect(dsn) as conn:
        return {r[0]: tuple(r) for r in conn.execute(f"SELECT * FROM {table} ORDER BY 1")}


def stored_positions(conn: psycopg.Connection[Any], group: str) -> Positions:
    """The sink's next offsets as committed in the target's cdc_offsets."""
    try:
        rows = conn.execute(
            "SELECT topic, kafka_partition, next_offset FROM public.cdc_offsets"
            " WHERE consumer_group = %s",
            (group,),
        ).fetchall()
    except psycopg.errors.UndefinedTable:
        conn.rollback()
        return {}
    return {(topic, partition): offset for topic, partition, offset in rows}


def kafka_consumer(bootstrap: str) -> Consumer:
    return Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"test-sink-{time.time_ns()}",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
        }
    )


def end_positions(bootstrap: str, topics: list[str], partitions: int) -> Positions:
    consumer = kafka_consumer(bootstrap)
    try:
        return {
            (topic, p): consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=30)[1]
            for topic in topics
            for p in range(partitions)
        }
    finally:
        consumer.close()


def wait_applied(target_dsn: str, group: str, ends: Positions, timeout: float = 120) -> None:
    """Until the target's cdc_offsets reach `ends` in every partition that has messages."""
    wanted = {key: end for key, end in ends.items() if end > 0}
    with psycopg.connect(target_dsn, autocommit=True) as conn:

        def done() -> bool:
            stored = stored_positions(conn, group)
            return all(stored.get(key, 0) >= end for key, end in wanted.items())

        if not wait_until(done, timeout=timeout, every=0.2):
            raise AssertionError(
                f"the sink did not apply up to {wanted} in {timeout}s:"
                f" {stored_positions(conn, group)}"
            )


def read_topic(bootstrap: str, topic: str, count: int, timeout: float = 60) -> list[Message]:
    """The first `count` messages of a one-partition topic (the dead-letter topic)."""
    consumer = kafka_consumer(bootstrap)
    consumer.assign([TopicPartition(topic, 0, 0)])
    messages: list[Message] = []
    deadline = time.monotonic() + timeout
    try:
        while len(messages) < count and time.monotonic() < deadline:
            messages += [m for m in consumer.consume(100, 0.5) if m.error() is None]
    finally:
        consumer.close()
    return messages


def headers_of(msg: Message) -> dict[str, str]:
    return {
        name: value.decode() if isinstance(value, bytes) else str(value)
        for name, value in dict(msg.headers() or []).items()
    }


def key_of(msg: Message) -> dict[str, Any]:
    key = msg.key()
    assert key is not None
    loaded: dict[str, Any] = orjson.loads(key)
    return loaded


class SinkProcess(DaemonProcess):
    """`cdc run -c FILE --role ROLE`, a sink unless told otherwise."""

    def __init__(self, config: Path, log_path: Path, role: str = "sink") -> None:
        super().__init__(config, log_path, role)
