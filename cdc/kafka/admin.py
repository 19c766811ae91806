"""Topic creation: table topics with the configured partitions, compacted
internal topics."""

from __future__ import annotations

from collections.abc import Mapping

import structlog
from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic

from cdc.kafka.connection import KafkaConnection, client_config

log = structlog.get_logger(__name__)

COMPACTED = {"cleanup.policy": "compact"}


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
        """Create the topic if it does not exist; an existing topic is left as it is."""
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
        self._known.add(name)

    def partitions(self, name: str, timeout: float = 30.0) -> int:
        metadata = self._client.list_topics(name, timeout=timeout)
        return len(metadata.topics[name].partitions)
