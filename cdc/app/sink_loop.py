"""The sink role in one process: a sink worker's loop, reconnecting after
failures a new connection can cure."""

from __future__ import annotations

import gc
import re
import socket
from typing import TYPE_CHECKING

import structlog
from confluent_kafka import KafkaException

from cdc import metrics
from cdc.app.lifecycle import Stopper
from cdc.app.retrying import TRANSIENT, retrying
from cdc.errors import TerminalError
from cdc.health import Health
from cdc.refusals import refusal
from cdc.settings import Settings

if TYPE_CHECKING:  # imported when a sink runs: a source-only process never loads it
    from sinks.worker import SinkWorker

log = structlog.get_logger(__name__)

# The sink allocates millions of short-lived, acyclic containers per minute
# (decoded JSON, rows). At the default gen-0 threshold (700) the cycle
# collector ran every few hundred messages and rescanned all that was alive:
# a third of the sink's time in profiles. Reference counting still frees
# them at once; cycles are just collected less often. The threshold counts
# containers alive beyond the last collection: a batch of 5000 messages holds
# about 40,000 until it is applied, so below 200,000 no collection scans them.
SINK_GC_THRESHOLD = (200_000, 20, 20)


def group_instance_id(settings: Settings, worker: int) -> str:
    """The static member id of a sink's consumer (`worker`: its index among
    `cdc.app.sink_workers`, 0 for a single sink): the same on every start on this
    host (a Kubernetes pod's host name is the pod's name)."""
    instance = settings.sink.instance_id
    if instance is None:  # Kafka takes [A-Za-z0-9._-] in an id
        instance = re.sub(r"[^A-Za-z0-9._-]", "_", socket.gethostname())[:200] or "cdc"
    return f"{instance}-{worker}"


def run_sink(settings: Settings, stopper: Stopper, health: Health, worker: int = 0) -> None:
    """The sink loop until `stopper` fires; `worker` is its index among the daemon's
    sink processes (`cdc.app.sink_workers`)."""
    # not for source-only runs
    from cdc.app.appliers import build_applier  # noqa: PLC0415
    from sinks.membership import FencedError, SessionFencedError  # noqa: PLC0415
    from sinks.worker import SinkWorker  # noqa: PLC0415

    if settings.target is None:
        raise TerminalError("the pipeline has no target", "add a target: section to run a sink")
    # Made in the loop: a target that is down at start-up is retried like one
    # lost later, not a crash (a refused login stops it: cdc.refusals).
    member = group_instance_id(settings, worker)
    sink: SinkWorker | None = None

    def apply_batch() -> None:
        nonlocal sink
        if sink is None:
            sink = SinkWorker(settings, lambda: build_applier(settings), member)
            gc.freeze()  # what start-up allocated lives on: out of every later collection
            gc.set_threshold(*SINK_GC_THRESHOLD)
        try:
            sink.run_once()
        except SessionFencedError:
            # the consumer is unusable: the next attempt starts a new one
            _close_quietly(sink)
            sink = None
            raise
        except FencedError:
            if not stopper.event.is_set():
                raise
            # Stopping already (its daemon is gone) when the daemon started in its place
            # took over its member id: what it applied is committed, nothing is lost.
            log.info("sink_replaced_while_stopping", group_instance_id=member)
            return
        health.set_ready(True)
        health.beat()

    def reconnect() -> None:
        if sink is not None:
            _reconnect_quietly(sink)

    try:
        retrying(
            apply_batch,
            role="sink",
            stop=stopper.event,
            health=health,
            reconnects=metrics.SINK_RECONNECTS,
            recover=reconnect,
        )
    finally:
        if sink is not None:
            sink.close()
    log.info("sink_stopped")


def _close_quietly(worker: SinkWorker) -> None:
    try:
        worker.close()
    except (*TRANSIENT, KafkaException) as exc:  # a fenced consumer refuses its goodbyes
        log.warning("sink_close_failed", error=str(exc))


def _reconnect_quietly(worker: SinkWorker) -> None:
    try:
        worker.reconnect()
    except TRANSIENT as exc:  # still down: the next turn of the loop tries again
        if (terminal := refusal(exc)) is not None:
            raise terminal from exc
        log.warning("sink_reconnect_failed", error=str(exc))
