"""Kafka helpers of the runners that go through the local broker."""

from __future__ import annotations

from confluent_kafka import Consumer, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient

PARTITIONS = 6  # of every topic the runners create


def high_watermarks(consumer: Consumer, topic: str) -> int:
    """Messages Kafka holds in the topic: the sum of the high watermarks (0
    while the topic does not exist yet)."""
    total = 0
    for partition in range(PARTITIONS):
        try:
            total += consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=5)[1]
        except KafkaException:
            return 0
    return total


def delete_topics(bootstrap: str, prefix: str) -> None:
    """Every `<prefix>.*` topic, so a rerun starts empty."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    topics = [t for t in admin.list_topics(timeout=10).topics if t.startswith(prefix + ".")]
    if topics:
        for future in admin.delete_topics(topics, operation_timeout=60).values():
            future.result()
