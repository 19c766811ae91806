"""Table schemas by fingerprint, read from the compacted `__schemas` topic."""

from __future__ import annotations

import time
import uuid

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition

from cdc.errors import TransientError
from cdc.kafka.connection import KafkaConnection, client_config
from cdc.schemas import TableSchema
from cdc.topics import schemas_topic


class SchemaCache:
    def __init__(self, connection: KafkaConnection, prefix: str) -> None:
        self._topic = schemas_topic(prefix)
        self._consumer = Consumer(
            {
                **client_config(connection),
                "group.id": f"cdc-schemas-{uuid.uuid4().hex}",
                "enable.auto.commit": False,
                "enable.partition.eof": True,
                # The end of the topic is news the first lookup waits for: the
                # broker should tell it at once, not hold the fetch for 500 ms.
                "fetch.wait.max.ms": 100,
            }
        )
        # With the partition's leader known before the assignment, librdkafka
        # looks up the first offset at once instead of retrying in 500 ms.
        self._consumer.list_topics(self._topic, timeout=10)
        self._consumer.assign([TopicPartition(self._topic, 0, OFFSET_BEGINNING)])
        # keyed by the header's bytes: no decoding per message
        self._schemas: dict[bytes, TableSchema] = {}
        # fingerprints a lookup waited for in vain: every message naming one would
        # otherwise wait the whole timeout again before it is dead-lettered
        self._missing: set[bytes] = set()

    def get(self, fingerprint: bytes, timeout: float = 30.0) -> TableSchema:
        """The schema; reads newer records when it is not known yet (the source
        publishes a schema before the first event that uses it, but on another
        topic, so it may arrive a little later). A fingerprint already waited for
        in vain is looked up in what arrived since, without waiting again."""
        found = self._schemas.get(fingerprint)
        if found is not None:  # every message asks: no clock read when the schema is known
            return found
        if fingerprint in self._missing:
            self._read_to_end(0)
            found = self._schemas.get(fingerprint)
            if found is None:
                raise TransientError(f"schema {fingerprint.decode()} is not on {self._topic}")
            self._missing.discard(fingerprint)
            return found
        deadline = time.monotonic() + timeout
        while (found := self._schemas.get(fingerprint)) is None:
            left = deadline - time.monotonic()
            if left <= 0:
                self._missing.add(fingerprint)
                raise TransientError(f"schema {fingerprint.decode()} is not on {self._topic} yet")
            # Reaching the end once is not enough: the end may have been reported before
            # the schema's record was written (it is produced apart from the event).
            self._read_to_end(left)
        return found

    def _read_to_end(self, timeout: float) -> None:
        while True:
            msg = self._consumer.poll(timeout)
            if msg is None:
                return
            error = msg.error()
            if error is not None:
                if error.code() == KafkaError._PARTITION_EOF:
                    return
                raise TransientError(f"reading {self._topic}: {error.str()}")
            value = msg.value()
            key = msg.key()
            if value is not None and key is not None:
                self._schemas[key] = TableSchema.from_json(value)

    def close(self) -> None:
        self._consumer.close()
