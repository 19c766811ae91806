"""The long-running process: wires a source to the publisher and keeps the
delivery rule (acknowledge only what Kafka has) under signals and failures."""

from __future__ import annotations

import gc
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any

import psycopg
import pymysql
import structlog

from cdc import metrics, systemd
from cdc.errors import TerminalError, TransientError
from cdc.health import Health, serve
from cdc.kafka.connection import check_access
from cdc.kafka.offsets import KafkaOffsetStore
from cdc.kafka.publisher import KafkaPublisher, TopicLayout
from cdc.postgres.replication import ReplicationError
from cdc.refusals import refusal
from cdc.settings import PostgresSource as PostgresSettings
from cdc.settings import Settings
from cdc.source import IDLE, Source

log = structlog.get_logger(__name__)

POLL_EVERY = 5000  # messages between delivery-report polls on a busy stream
# ... and at least this often on a slow one that never goes idle (a trickle
# of changes): acknowledgements and health beats must not wait for 5000 messages.
POLL_INTERVAL_S = 0.2
# The sink allocates millions of short-lived, acyclic containers per minute
# (decoded JSON, rows). At the default gen-0 threshold (700) the cycle
# collector ran every few hundred messages and rescanned all that was alive:
# a third of the sink's time in profiles. Reference counting still frees
# them at once; cycles are just collected less often. The threshold counts
# containers alive beyond the last collection: a batch of 5000 messages holds
# about 40,000 until it is applied, so below 200,000 no collection scans them.
SINK_GC_THRESHOLD = (200_000, 20, 20)
MAX_BACKOFF_S = 30.0
# Failures that a new connection can cure: a server restart, a network cut.
TRANSIENT = (psycopg.OperationalError, pymysql.OperationalError, ReplicationError, TransientError)


def build_source(settings: Settings, offsets: KafkaOffsetStore) -> Source:
    # Engines import lazily: a PostgreSQL pipeline does not load the binlog reader.
    direct = settings if settings.snapshot.mode == "direct" else None
    if isinstance(settings.source, PostgresSettings):
        from cdc.postgres.source import PostgresSource  # noqa: PLC0415

        return PostgresSource(settings.source, settings.snapshot, offsets, direct)
    from cdc.mysql.source import MysqlSource  # noqa: PLC0415

    return MysqlSource(settings.source, settings.snapshot, offsets, settings.name, direct)


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
        systemd.notify("STOPPING=1", systemd.status("stopping: draining in-flight events"))
        self.event.set()


def run_logged(role: str, body: Callable[[], None]) -> int:
    """Run `body`: 0 when it returns; a failure becomes one log line and 1."""
    log = structlog.get_logger("cdc")
    try:
        body()
    except TerminalError as error:
        log.error("stopped", error=error.message, fix=error.remedy, role=role)
        return 1
    except Exception as error:
        # Unforeseen: still one log line, through the log's secret redaction, where
        # a bare traceback on stderr would print an exception's text unredacted.
        log.exception("crashed", error=str(error), role=role)
        return 1
    return 0


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
        check_access(settings.kafka.client_config())
        if role == "source":
            run_source(settings, stopper, health, grace_s)
        elif role == "sink":
            _run_sink_role(settings, stopper, health, grace_s, config_path)
        else:
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

    def source() -> None:
        try:
            run_source(settings, stopper, health, grace_s)
        except BaseException as exc:
            errors.append(exc)
            stopper.event.set()  # one role failing stops the other

    thread = threading.Thread(target=source, name="cdc-source", daemon=True)
    thread.start()
    try:
        _run_sink_role(settings, stopper, health, grace_s, config_path)
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
        TopicLayout(prefix, kafka.partitions, kafka.replication_factor),
        kafka.producer_config(),
        client_id=f"cdc-{settings.name}",
    )
    backoff = 1.0
    while not stopper.event.is_set():
        source = build_source(settings, offsets)
        try:
            _pump(source, publisher, health, stopper, grace_s)
            backoff = 1.0
        except TRANSIENT as exc:
            if (terminal := refusal(exc)) is not None:
                raise terminal from exc
            # The stream resumes from the last acknowledged position. What
            # Kafka accepted is still acknowledged: snapshot progress lives
            # in Kafka, not in the lost connection.
            health.set_ready(False)
            publisher.flush(grace_s)
            _acknowledge(publisher, source)
            metrics.SOURCE_RECONNECTS.inc()
            log.warning("source_reconnecting", error=str(exc), in_s=backoff)
            systemd.notify(systemd.status(f"source reconnecting in {backoff:.0f} s: {exc}"))
            # Waiting out a backoff is the loop working, not stalling: neither the watchdog
            # nor a liveness probe should turn an outage into a restart loop.
            health.beat()
            stopper.event.wait(backoff)
            backoff = min(backoff * 2, MAX_BACKOFF_S)
        finally:
            _close_quietly(source)
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
    from cdc.sink_workers import run_sink_workers  # noqa: PLC0415 (only with sink.workers > 1)

    run_sink_workers(settings, config_path.absolute(), stopper.event, health, grace_s)


def run_sink(settings: Settings, stopper: Stopper, health: Health) -> None:
    from sinks.worker import SinkWorker, build_applier  # noqa: PLC0415 (not for source-only runs)

    if settings.target is None:
        raise TerminalError("the pipeline has no target", "add a target: section to run a sink")
    # Made in the loop: a target that is down at start-up is retried like one
    # lost later, not a crash (a refused login stops it: cdc.refusals).
    worker: SinkWorker | None = None
    backoff = 1.0
    try:
        while not stopper.event.is_set():
            try:
                if worker is None:
                    worker = SinkWorker(settings, lambda: build_applier(settings))
                    gc.freeze()  # what start-up allocated lives on: out of every later collection
                    gc.set_threshold(*SINK_GC_THRESHOLD)
                worker.run_once()
                health.set_ready(True)
                health.beat()
                backoff = 1.0
            except TRANSIENT as exc:
                if (terminal := refusal(exc)) is not None:
                    raise terminal from exc
                health.set_ready(False)
                metrics.SINK_RECONNECTS.inc()
                log.warning("sink_reconnecting", error=str(exc), in_s=backoff)
                systemd.notify(systemd.status(f"sink reconnecting in {backoff:.0f} s: {exc}"))
                health.beat()  # as in run_source: a backoff is not a stall
                stopper.event.wait(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF_S)
                if worker is not None:
                    _reconnect_quietly(worker)
    finally:
        if worker is not None:
            worker.close()
    log.info("sink_stopped")


def _reconnect_quietly(worker: Any) -> None:
    try:
        worker.reconnect()
    except TRANSIENT as exc:  # still down: the next turn of the loop tries again
        if (terminal := refusal(exc)) is not None:
            raise terminal from exc
        log.warning("sink_reconnect_failed", error=str(exc))


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
