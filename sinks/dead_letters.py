"""The dead-letter topic `<prefix>.__dlq`: events the sink could not apply.

Each keeps the original key, value and headers, plus `cdc.error` (what went
wrong), `cdc.reason` (a short category), `cdc.table` and where it came from
(`cdc.topic`, `cdc.partition`, `cdc.offset`). Each is also logged once
(`dead_lettered`), when the topic has it: its id (its offset on the
dead-letter topic, what `cdc dlq` names it by), the table, key, source
position, reason, error and original topic, partition and offset. What an
operator does with them is `sinks.dlq`.
"""

from __future__ import annotations

import uuid
from typing import Any

import orjson
import structlog
from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition

from cdc import metrics
from cdc.kafka.admin import TopicAdmin
from cdc.kafka.connection import KafkaConnection, client_config
from cdc.kafka.partition_reader import TIMEOUT_S, read_range
from cdc.settings_kafka import DEFAULT_MAX_MESSAGE_BYTES, MESSAGE_HEADROOM
from cdc.topics import dead_letter_topic

log = structlog.get_logger(__name__)
SHOWN_CHARS = 500  # of a key or an error in the log line; the message keeps them whole


REMEMBERED = 100_000  # dead letters a process keeps from sending twice
# Dead letters re-read at start: a sink that died after its dead letters were
# on the topic but before its batch's offsets committed meets them again.
# Each worker has at most one batch in flight, a few thousand messages.
REREAD = 20_000


class DeadLetters:
    def __init__(
        self,
        connection: KafkaConnection,
        prefix: str,
        replication_factor: int,
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
    ) -> None:
        """`max_message_bytes`: kafka.max_message_bytes; a dead letter carries its
        message whole, with headers on top."""
        size = max_message_bytes + MESSAGE_HEADROOM
        self.topic = dead_letter_topic(prefix)
        TopicAdmin(connection).ensure(
            self.topic, 1, replication_factor, {"max.message.bytes": str(size)}
        )
        self._producer = Producer(
            {
                **client_config(connection),
                "enable.idempotence": True,
                "acks": "all",
                "message.max.bytes": size,
            }
        )
        self._errors: list[str] = []
        # (topic, partition, offset) of the messages on the topic, oldest first:
        # those this process sent and flushed, and the last ones before it started
        self._durable: dict[tuple[str, int, int], None] = dict.fromkeys(
            _recent_origins(connection, self.topic)
        )
        self._pending: list[tuple[str, int, int]] = []
        self.last_id: int | None = None  # offset on the topic of the last one it took

    def send(self, msg: Message, table: str, reason: str, error: str) -> None:
        """Dead-letter `msg`, unless the topic has it already: a batch applied
        again after a failure (or by the next process, after a crash) meets its
        dead letters again, and each is sent, counted and logged once."""
        where = (msg.topic() or "", msg.partition() or 0, msg.offset() or 0)
        if where in self._durable:
            return
        self._pending.append(where)
        headers: list[tuple[str, str | bytes | None]] = [
            (header[0], header[1]) for header in msg.headers() or []
        ]
        headers += [
            ("cdc.reason", reason.encode()),
            ("cdc.table", table.encode()),
            ("cdc.error", error.encode()),
            ("cdc.topic", (msg.topic() or "").encode()),
            ("cdc.partition", str(msg.partition()).encode()),
            ("cdc.offset", str(msg.offset()).encode()),
        ]

        line = {
            "table": table,
            "key": _shown(msg.key()),
            "position": source_position(msg.value()),
            "reason": reason,
            "error": error[:SHOWN_CHARS],
            "topic": msg.topic(),
            "partition": msg.partition(),
            "offset": msg.offset(),
        }

        def on_delivery(err: object, sent: Message) -> None:
            # logged here, not at send: the line names the dead letter's own id
            if err is not None:
                self._errors.append(str(err))
            else:
                self.last_id = sent.offset()
                log.warning("dead_lettered", id=self.last_id, **line)

        self._producer.produce(
            self.topic, msg.value(), msg.key(), headers=headers, on_delivery=on_delivery
        )
        metrics.DLQ_EVENTS.labels(table=table, reason=reason).inc()

    def flush(self) -> None:
        """Durable before the batch's offsets are committed: a dead letter is
        never lost, at worst written twice after a crash."""
        if self._producer.flush(60) != 0 or self._errors:
            self._pending.clear()  # to be sent again with the batch
            raise RuntimeError(f"dead-letter topic {self.topic} did not accept: {self._errors}")
        for where in self._pending:
            self._durable[where] = None
        self._pending.clear()
        while len(self._durable) > REMEMBERED:  # the oldest are behind the stored offsets
            del self._durable[next(iter(self._durable))]


def _shown(data: bytes | None) -> str | None:
    return None if data is None else data[:SHOWN_CHARS].decode(errors="replace")


def source_position(value: bytes | None) -> str | None:
    """The source position the event names (PostgreSQL LSN, MySQL file:pos), if it
    is an event at all: a poison message may not be JSON."""
    try:
        source: Any = orjson.loads(value or b"null")["source"]
    except (orjson.JSONDecodeError, TypeError, KeyError):
        return None
    if not isinstance(source, dict):
        return None
    if source.get("lsn") is not None:
        return str(source["lsn"])
    if source.get("file"):
        return f"{source['file']}:{source.get('pos')}"
    return None


def _recent_origins(connection: KafkaConnection, topic: str) -> list[tuple[str, int, int]]:
    """Where the last REREAD dead letters on `topic` came from, oldest first."""
    consumer = Consumer(
        {
            **client_config(connection),
            "group.id": f"cdc-dlq-reader-{uuid.uuid4().hex}",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
        }
    )
    try:
        try:
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=TIMEOUT_S)
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError._UNKNOWN_PARTITION:
                raise
            return []  # a topic this new (its metadata not here yet) holds nothing to meet again
        origins = []
        for msg in read_range(consumer, topic, 0, max(low, high - REREAD), high):
            raw: Any = msg.headers() or []  # confluent-kafka gives a list of pairs
            headers: dict[str, bytes] = {name: value or b"" for name, value in raw}
            try:
                origins.append(
                    (
                        headers["cdc.topic"].decode(),
                        int(headers["cdc.partition"]),
                        int(headers["cdc.offset"]),
                    )
                )
            except (KeyError, ValueError):
                continue  # written by hand or by another tool: not one of ours to match
        return origins
    finally:
        consumer.close()
