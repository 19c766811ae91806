"""The long-running process: wires a source to the publisher and keeps the
delivery rule (acknowledge only what Kafka has) under signals and failures."""

from __future__ import annotations

import signal
import threading
import time
from types import FrameType

import structlog

from cdc.errors import TerminalError
from cdc.health import Health, serve
from cdc.kafka.offsets import KafkaOffsetStore
from cdc.kafka.publisher import KafkaPublisher, TopicLayout
from cdc.settings import PostgresSource as PostgresSettings
from cdc.settings import Settings
from cdc.source import IDLE, Source

log = structlog.get_logger(__name__)

POLL_EVERY = 1000  # items between delivery-report polls on a busy stream


def build_source(settings: Settings, offsets: KafkaOffsetStore) -> Source:
    if isinstance(settings.source, PostgresSettings):
        from cdc.postgres.source import PostgresSource  # noqa: PLC0415 (heavy, per engine)

        return PostgresSource(settings.source, settings.snapshot, offsets)
    raise TerminalError(
        "the MySQL/MariaDB source is not available in this version",
        "use source.type: postgres",
    )


class Stopper:
    """First SIGTERM/SIGINT: stop reading and drain. Second: leave at once;
    nothing that was not durable has been acknowledged, so nothing is lost."""

    def __init__(self) -> None:
        self.event = threading.Event()

    def install(self) -> None:
        signal.signal(signal.SIGTERM, self._handle)
        signal.signal(signal.SIGINT, self._handle)

    def _handle(self, signum: int, _frame: FrameType | None) -> None:
        if self.event.is_set():
            log.warning("second_signal_exit", signal=signum)
            raise SystemExit(130)
        log.info("shutdown_requested", signal=signum)
        self.event.set()


def run_source(settings: Settings, stopper: Stopper, grace_s: float = 30.0) -> None:
    kafka = settings.kafka
    health = Health()
    server = serve(settings.metrics.address, health)
    prefix = kafka.topic_prefix or settings.name
    offsets = KafkaOffsetStore(kafka.bootstrap_servers, prefix, kafka.replication_factor)
    publisher = KafkaPublisher(
        kafka.bootstrap_servers,
        TopicLayout(prefix, kafka.partitions, kafka.replication_factor),
        kafka.producer_config(),
        client_id=f"cdc-{settings.name}",
    )
    source = build_source(settings, offsets)
    count = 0
    try:
        for item in source.stream(None):
            if item is IDLE:
                health.set_ready(True)
            else:
                publisher.publish(item)
                count += 1
            if item is IDLE or count % POLL_EVERY == 0:
                publisher.poll(0)
                for position in publisher.drain_acknowledged():
                    source.ack(position)
                health.beat()
            if stopper.event.is_set():
                break
        deadline = time.monotonic() + grace_s
        publisher.flush(max(0.0, deadline - time.monotonic()))
        for position in publisher.drain_acknowledged():
            source.ack(position)
        log.info("source_stopped", events=count, in_flight=publisher.in_flight)
    finally:
        source.close()
        server.shutdown()
