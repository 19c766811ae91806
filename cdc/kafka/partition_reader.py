"""Reading one stretch of one partition, start to end, with a consumer of no
group: what `cdc dlq` reads of the dead-letter topic and the table topics,
and what a sink re-reads of the dead-letter topic at start."""

from __future__ import annotations

import time
from collections.abc import Iterator

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition

from cdc.errors import TransientError

TIMEOUT_S = 30.0


def read_range(
    consumer: Consumer, topic: str, partition: int, start: int, end: int
) -> Iterator[Message]:
    """The messages at offsets start..end-1 that Kafka holds, in order. The
    consumer needs `enable.partition.eof`: the end of the partition ends the
    read even where compaction left a gap before `end`."""
    if start >= end:
        return
    consumer.assign([TopicPartition(topic, partition, start)])
    deadline = time.monotonic() + TIMEOUT_S
    try:
        while True:
            batch = consumer.consume(1000, 0.5)
            if not batch and time.monotonic() > deadline:
                raise TransientError(f"reading {topic}:{partition} from {start}: no answer")
            for msg in batch:
                error = msg.error()
                if error is not None:
                    if error.code() == KafkaError._PARTITION_EOF:
                        return
                    raise KafkaException(error)
                if (msg.offset() or 0) >= end:
                    return
                yield msg
            if batch:
                deadline = time.monotonic() + TIMEOUT_S
    finally:
        consumer.unassign()
