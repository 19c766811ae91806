"""The long-running process: wires a source to the publisher and keeps the
delivery rule (acknowledge only what Kafka has) under signals and failures."""

from __future__ import annotations

import signal
import threading
from types import FrameType

import psycopg
import pymysql
import structlog

from cdc import metrics
from cdc.errors import TransientError
from cdc.health import Health, serve
from cdc.kafka.offsets import KafkaOffsetStore
from cdc.kafka.publisher import KafkaPublisher, TopicLayout
from cdc.postgres.replication import ReplicationError
from cdc.settings import PostgresSource as PostgresSettings
from cdc.settings import Settings
from cdc.source import IDLE, Source

log = structlog.get_logger(__name__)

POLL_EVERY = 1000  # items between delivery-report polls on a busy stream
MAX_BACKOFF_S = 30.0
# Failures that a new connection can cure: a server restart, a network cut.
TRANSIENT = (psycopg.OperationalError, pymysql.OperationalError, ReplicationError, TransientError)


def build_source(settings: Settings, offsets: KafkaOffsetStore) -> Source:
    # Engines import lazily: a PostgreSQL pipeline does not load the binlog reader.
    if isinstance(settings.source, PostgresSettings):
        from cdc.postgres.source import PostgresSource  # noqa: PLC0415

        return PostgresSource(settings.source, settings.snapshot, offsets)
    from cdc.mysql.source import MysqlSource  # noqa: PLC0415

    return MysqlSource(settings.source, settings.snapshot, offsets)


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
    backoff = 1.0
    try:
        while not stopper.event.is_set():
            source = build_source(settings, offsets)
            try:
                _pump(source, publisher, health, stopper, grace_s)
                backoff = 1.0
            except TRANSIENT as exc:
                # The stream resumes from the last acknowledged position. What
                # Kafka accepted is still acknowledged: snapshot progress lives
                # in Kafka, not in the lost connection.
                health.set_ready(False)
                publisher.flush(grace_s)
                _acknowledge(publisher, source)
                metrics.SOURCE_RECONNECTS.inc()
                log.warning("source_reconnecting", error=str(exc), in_s=backoff)
                stopper.event.wait(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF_S)
            finally:
                _close_quietly(source)
        log.info("source_stopped", in_flight=publisher.in_flight)
    finally:
        server.shutdown()


def _pump(
    source: Source, publisher: KafkaPublisher, health: Health, stopper: Stopper, grace_s: float
) -> None:
    """Publish the stream until a stop is requested, acknowledging each
    checkpoint to the source once Kafka has everything before it."""
    count = 0
    for item in source.stream(None):
        if item is IDLE:
            health.set_ready(True)
        else:
            publisher.publish(item)
            count += 1
        if item is IDLE or count % POLL_EVERY == 0:
            publisher.poll(0)
            _acknowledge(publisher, source)
            health.beat()
        if stopper.event.is_set():
            break
    # drain before the source closes, so its last acknowledgement reaches the server
    publisher.flush(grace_s)
    _acknowledge(publisher, source)


def _acknowledge(publisher: KafkaPublisher, source: Source) -> None:
    for position in publisher.drain_acknowledged():
        source.ack(position)


def _close_quietly(source: Source) -> None:
    try:
        source.close()
    except Exception as exc:  # the connection may already be gone
        log.warning("source_close_failed", error=str(exc))
