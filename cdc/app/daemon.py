"""The long-running process: wires a source to the publisher and keeps the
delivery rule (acknowledge only what Kafka has) under signals and failures."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import structlog

from cdc import metrics, systemd
from cdc.app.engines import engine_for
from cdc.app.lifecycle import Stopper
from cdc.app.retrying import TRANSIENT, retrying
from cdc.app.sink_loop import run_sink
from cdc.app.sink_workers import run_sink_workers
from cdc.engine import Sides
from cdc.errors import TerminalError
from cdc.health import Health, serve
from cdc.kafka.connection import check_access
from cdc.kafka.offsets import KafkaOffsetStore
from cdc.kafka.publisher import KafkaPublisher, TopicLayout
from cdc.settings import PostgresSource as PostgresSettings
from cdc.settings import Settings
from cdc.source import IDLE, Source

log = structlog.get_logger(__name__)

POLL_EVERY = 5000  # messages between delivery-report polls on a busy stream
# ... and at least this often on a slow one that never goes idle (a trickle
# of changes): acknowledgements and health beats must not wait for 5000 messages.
POLL_INTERVAL_S = 0.2


def build_source(settings: Settings, offsets: KafkaOffsetStore) -> Source:
    """The pipeline's source; with `snapshot.mode: direct`, wired to copy its
    snapshot into the target (`cdc.app.direct_copy`) before it streams."""
    # Engines import lazily: a PostgreSQL pipeline does not load the binlog reader,
    # and only a direct copy loads the target's writer on the source's side.
    copy = None
    if settings.snapshot.mode == "direct":
        from cdc.app.direct_copy import direct_copy  # noqa: PLC0415

        copy = direct_copy(settings)
    if isinstance(settings.source, PostgresSettings):
        from cdc.postgres.source import PostgresSource  # noqa: PLC0415

        return PostgresSource(settings.source, settings.snapshot, offsets, copy)
    from cdc.mysql.source import MysqlSource  # noqa: PLC0415

    return MysqlSource(settings.source, settings.snapshot, offsets, settings.name, copy)


def run(
    settings: Settings,
    role: str,
    stopper: Stopper,
    grace_s: float = 30.0,
    config_path: Path | None = None,
) -> None:
    """Run `role` (source, sink or all) until `stopper` fires; /metrics,
    /healthz and /readyz are served meanwhile; under systemd the same readiness and
    beats become READY=1 and WATCHDOG=1 (see cdc.systemd). `config_path`, the file
    `settings` came from, is read again by sink worker processes (`sink.workers`)."""
    health = systemd.NotifyingHealth()
    systemd.notify(systemd.status(f"starting {role} for pipeline {settings.name}"))
    server = serve(settings.metrics.address, health)
    try:
        if not check_access(settings.kafka.client_config(), stop=stopper.event):
            return  # stopped while waiting for the brokers
        if role == "source":
            run_source(settings, stopper, health, grace_s)
        elif role == "sink":
            _run_sink_role(settings, stopper, health, grace_s, config_path)
        else:
            # one process reaches both sides: make sure they are two
            sides = Sides.of(settings, engine_for)
            try:
                sides.check_distinct()
            except (*sides.source.errors, *sides.target.errors):
                pass  # a side it cannot reach: its role says why, with the fix
            _run_both(settings, stopper, health, grace_s, config_path)
    finally:
        server.shutdown()


def _run_both(
    settings: Settings,
    stopper: Stopper,
    health: Health,
    grace_s: float,
    config_path: Path | None,
) -> None:
    errors: list[BaseException] = []

    # /readyz answers ready only while both roles are: a sink applying does
    # not hide a source that cannot reach its database
    source_health, sink_health = health.part("source"), health.part("sink")

    def source() -> None:
        try:
            run_source(settings, stopper, source_health, grace_s)
        except BaseException as exc:
            errors.append(exc)
            stopper.event.set()  # one role failing stops the other

    thread = threading.Thread(target=source, name="cdc-source", daemon=True)
    thread.start()
    try:
        _run_sink_role(settings, stopper, sink_health, grace_s, config_path)
    finally:
        stopper.event.set()
        thread.join()
    if errors:
        raise errors[0]


def run_source(settings: Settings, stopper: Stopper, health: Health, grace_s: float) -> None:
    kafka = settings.kafka
    prefix = kafka.topic_prefix or settings.name
    offsets = KafkaOffsetStore(kafka.client_config(), prefix, kafka.replication_factor)
    publisher = KafkaPublisher(
        kafka.client_config(),
        TopicLayout(prefix, kafka.partitions, kafka.replication_factor, kafka.max_message_bytes),
        kafka.producer_config(),
        client_id=f"cdc-{settings.name}",
    )

    def stream() -> None:
        source = build_source(settings, offsets)
        try:
            _pump(source, publisher, health, stopper, grace_s)
        except TRANSIENT:
            # The stream resumes from the last acknowledged position. What
            # Kafka accepted is still acknowledged, before the source closes:
            # snapshot progress lives in Kafka, not in the lost connection.
            publisher.flush(grace_s)
            _acknowledge(publisher, source)
            raise
        finally:
            _close_quietly(source)

    retrying(
        stream,
        role="source",
        stop=stopper.event,
        health=health,
        reconnects=metrics.SOURCE_RECONNECTS,
    )
    log.info("source_stopped", in_flight=publisher.in_flight)


def _run_sink_role(
    settings: Settings,
    stopper: Stopper,
    health: Health,
    grace_s: float,
    config_path: Path | None,
) -> None:
    if settings.sink.workers == 1:
        run_sink(settings, stopper, health)
        return
    if config_path is None:
        raise TerminalError(
            "sink.workers > 1 starts worker processes that read the configuration file,"
            " but no file was given",
            "run the pipeline with `cdc run -c FILE`, or set sink.workers: 1",
        )
    run_sink_workers(settings, config_path.absolute(), stopper.event, health, grace_s)


def _pump(
    source: Source, publisher: KafkaPublisher, health: Health, stopper: Stopper, grace_s: float
) -> None:
    """Publish the stream until a stop is requested, acknowledging each
    checkpoint to the source once Kafka has everything before it."""
    published = 0
    polled = time.monotonic()
    for item in source.stream(None):
        if item is IDLE:
            health.set_ready(True)
        else:
            published += publisher.publish(item)
        if item is IDLE or published >= POLL_EVERY or time.monotonic() - polled >= POLL_INTERVAL_S:
            publisher.poll(0)
            _acknowledge(publisher, source)
            health.beat()
            published = 0
            polled = time.monotonic()
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
