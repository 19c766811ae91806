"""When a restarted Kafka broker serves the pipelines again: the moment recovery
times are measured from (the broker's own start-up is not cdc's to shorten)."""

from __future__ import annotations

import threading
import time

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient


class Serving(threading.Thread):
    """Notes when a restarted broker serves the pipelines again: every partition of
    their topics has its leader, and their consumer groups' coordinator answers."""

    def __init__(self, bootstrap: str, topics: list[str], groups: list[str]) -> None:
        super().__init__(daemon=True)
        # made once the broker listens, and quick to call again while it loads
        self._admin = AdminClient({"bootstrap.servers": bootstrap, "reconnect.backoff.max.ms": 100})
        self._topics, self._groups = topics, groups
        self.at: float | None = None
        self.start()

    def run(self) -> None:
        deadline = time.monotonic() + 60
        while not self._serves():
            if time.monotonic() > deadline:
                return
            time.sleep(0.05)
        self.at = time.monotonic()

    def _serves(self) -> bool:
        try:
            for topic in self._topics:
                metadata = self._admin.list_topics(topic, timeout=1)
                found = metadata.topics.get(topic)
                partitions = found.partitions.values() if found is not None else []
                if not partitions or any(
                    p.error is not None or p.leader not in metadata.brokers for p in partitions
                ):
                    return False
            for future in self._admin.describe_consumer_groups(self._groups).values():
                future.result(timeout=1)
        except (KafkaException, TimeoutError):
            return False
        return True
