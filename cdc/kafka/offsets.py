"""An offset store on a compacted Kafka topic (`<prefix>.__offsets`).

Every source position and snapshot chunk marker can live here, next to the
data it describes, so a pipeline needs no other storage. The whole topic is
read once at start (it is compacted, so it stays small); later reads come
from memory because this process is the only writer for its keys. Other
processes follow it with an `OffsetsReader`, which never creates it.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import orjson
from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    KafkaException,
    Producer,
    TopicPartition,
)

from cdc.errors import TransientError
from cdc.kafka.admin import COMPACTED, TopicAdmin
from cdc.kafka.connection import KafkaConnection, client_config
from cdc.topics import offsets_topic

_NOT_READY_YET = {
    KafkaError._UNKNOWN_PARTITION,
    KafkaError.NOT_LEADER_FOR_PARTITION,
    KafkaError.LEADER_NOT_AVAILABLE,
}


class OffsetsReader:
    """Reads `<prefix>.__offsets` without writing to it or creating it, so a command
    that only looks (`cdc status`, `cdc verify`) leaves no trace: a topic that does
    not exist yet holds no position yet. Each `read` picks up what its writer added
    since the previous one, with the one consumer the reader keeps until `close`."""

    def __init__(self, connection: KafkaConnection, prefix: str) -> None:
        self.topic = offsets_topic(prefix)
        self._consumer = Consumer(
            {
                **client_config(connection),
                "group.id": f"cdc-offsets-reader-{uuid.uuid4().hex}",
                "enable.auto.commit": False,
                "enable.partition.eof": True,
                # a compacted-away start: read from the first message kept
                "auto.offset.reset": "earliest",
                # a broker with auto.create.topics.enable must not create it for a reader
                "allow.auto.create.topics": False,
            }
        )
        self._values: dict[str, Any] = {}
        self._next = OFFSET_BEGINNING

    def read(self) -> dict[str, Any]:
        """Every key's latest value; empty while the topic does not exist."""
        if self._next == OFFSET_BEGINNING and not self._exists():
            return self._values
        high = self._high_watermark()
        if high <= max(self._next, 0):
            return self._values
        self._consumer.assign([TopicPartition(self.topic, 0, self._next)])
        while True:
            msg = self._consumer.poll(10)
            if msg is None:
                raise TransientError(f"reading {self.topic} timed out")
            error = msg.error()
            if error is not None:
                if error.code() == KafkaError._PARTITION_EOF:
                    break
                raise RuntimeError(f"reading {self.topic}: {error.str()}")
            key = msg.key()
            assert key is not None
            value = msg.value()
            if value is None:
                self._values.pop(key.decode(), None)
            else:
                self._values[key.decode()] = orjson.loads(value)
            self._next = (msg.offset() or 0) + 1
            if self._next >= high:
                break
        return self._values

    def close(self) -> None:
        self._consumer.close()

    def _exists(self) -> bool:
        found = self._consumer.list_topics(self.topic, timeout=10).topics.get(self.topic)
        return found is not None and (
            found.error is None or found.error.code() != KafkaError.UNKNOWN_TOPIC_OR_PART
        )

    def _high_watermark(self) -> int:
        # A topic created a moment ago may not be in every broker's metadata yet,
        # or its partition leader not elected yet.
        deadline = time.monotonic() + 30
        while True:
            try:
                marks = self._consumer.get_watermark_offsets(
                    TopicPartition(self.topic, 0), timeout=10
                )
                return int(marks[1])
            except KafkaException as exc:
                if exc.args[0].code() not in _NOT_READY_YET:
                    raise
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)


class KafkaOffsetStore:
    def __init__(
        self, connection: KafkaConnection, prefix: str, replication_factor: int = 1
    ) -> None:
        self._topic = offsets_topic(prefix)
        TopicAdmin(connection).ensure(self._topic, 1, replication_factor, COMPACTED)
        self._producer = Producer(
            {
                **client_config(connection),
                "enable.idempotence": True,
                "acks": "all",
                "linger.ms": 0,
            }
        )
        # read once: later reads come from memory, this process being the keys' only writer
        reader = OffsetsReader(connection, prefix)
        try:
            self._values = dict(reader.read())
        finally:
            reader.close()

    def get(self, key: str) -> Any | None:
        return self._values.get(key)

    def put(self, key: str, value: Any) -> None:
        self._write(key, orjson.dumps(value))
        self._values[key] = value

    def delete(self, key: str) -> None:
        self._write(key, None)
        self._values.pop(key, None)

    def keys(self, prefix: str = "") -> list[str]:
        return [key for key in self._values if key.startswith(prefix)]

    def _write(self, key: str, value: bytes | None) -> None:
        errors: list[str] = []

        def on_delivery(err: Any, _msg: Any) -> None:
            if err is not None:
                errors.append(err.str())

        self._producer.produce(self._topic, value, key.encode(), on_delivery=on_delivery)
        if self._producer.flush(60) != 0:
            raise TransientError(f"{self._topic}: Kafka did not confirm the write of {key!r}")
        if errors:
            raise RuntimeError(f"{self._topic}: Kafka refused the write of {key!r}: {errors[0]}")
