"""Topic creation: table topics with the configured partitions, compacted
internal topics."""

from __future__ import annotations

import time
from collections.abc import Mapping

import structlog
from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import (
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
)
from confluent_kafka.cimpl import NewTopic

from cdc.errors import TransientError
from cdc.kafka.connection import KafkaConnection, client_config

log = structlog.get_logger(__name__)

COMPACTED = {"cleanup.policy": "compact"}
LIMIT = "max.message.bytes"


class TopicAdmin:
    def __init__(self, connection: KafkaConnection) -> None:
        self._client = AdminClient(client_config(connection))
        self._known: set[str] = set()

    def ensure(
        self,
        name: str,
        partitions: int,
        replication_factor: int,
        config: Mapping[str, str] | None = None,
        timeout: float = 30.0,
    ) -> None:
        """Create the topic if it does not exist. Of an existing topic only a
        `max.message.bytes` below `config`'s is raised to it: a user who raised
        kafka.max_message_bytes after a row stopped the source needs it on the
        topics made before, too."""
        if name in self._known:
            return
        topic = NewTopic(
            name,
            num_partitions=partitions,
            replication_factor=replication_factor,
            config=dict(config or {}),
        )
        future = self._client.create_topics([topic], operation_timeout=timeout)[name]
        try:
            future.result(timeout=timeout)
            log.info("topic_created", topic=name, partitions=partitions)
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise
            if config and LIMIT in config:
                self._raise_limit(name, int(config[LIMIT]), timeout)
        self._known.add(name)

    def _raise_limit(self, name: str, wanted: int, timeout: float) -> None:
        found = self._topic_config(name, timeout)
        entry = found.get(LIMIT)
        if entry is None or entry.value is None or int(entry.value) >= wanted:
            return
        change = ConfigResource(
            ConfigResource.Type.TOPIC,
            name,
            incremental_configs=[
                ConfigEntry(LIMIT, str(wanted), incremental_operation=AlterConfigOpType.SET)
            ],
        )
        self._client.incremental_alter_configs([change])[change].result(timeout=timeout)
        log.info("topic_limit_raised", topic=name, setting=LIMIT, was=entry.value, now=wanted)

    def _topic_config(self, name: str, timeout: float) -> dict[str, ConfigEntry]:
        """The topic's configuration. A topic another process created a moment ago (two
        sink workers starting together) may be unknown to the broker answering: ask again."""
        resource = ConfigResource(ConfigResource.Type.TOPIC, name)
        deadline = time.monotonic() + timeout
        while True:
            try:
                found: dict[str, ConfigEntry] = self._client.describe_configs([resource])[
                    resource
                ].result(timeout=timeout)
                return found
            except KafkaException as exc:
                if exc.args[0].code() != KafkaError.UNKNOWN_TOPIC_OR_PART:
                    raise
                if time.monotonic() > deadline:
                    raise TransientError(
                        f"topic {name} is still unknown after {timeout:g} s"
                    ) from exc
            time.sleep(0.1)

    def partitions(self, name: str, timeout: float = 30.0) -> int:
        """The topic's partition count. A topic just created may show none
        for a moment: a table-wide event sent to every partition of it would
        then go nowhere, so wait until it has some."""
        deadline = time.monotonic() + timeout
        while True:
            topic = self._client.list_topics(name, timeout=timeout).topics.get(name)
            if topic is not None and topic.error is None and topic.partitions:
                return len(topic.partitions)
            if time.monotonic() > deadline:
                raise TransientError(f"topic {name} shows no partitions after {timeout:g} s")
            time.sleep(0.05)
