"""The sink role in one process: a sink worker's loop, reconnecting after
failures a new connection can cure."""

from __future__ import annotations

import gc
from typing import Any

import structlog

from cdc import metrics, systemd
from cdc.app.lifecycle import MAX_BACKOFF_S, TRANSIENT, Stopper
from cdc.errors import TerminalError
from cdc.health import Health
from cdc.refusals import refusal
from cdc.settings import Settings

log = structlog.get_logger(__name__)

# The sink allocates millions of short-lived, acyclic containers per minute
# (decoded JSON, rows). At the default gen-0 threshold (700) the cycle
# collector ran every few hundred messages and rescanned all that was alive:
# a third of the sink's time in profiles. Reference counting still frees
# them at once; cycles are just collected less often. The threshold counts
# containers alive beyond the last collection: a batch of 5000 messages holds
# about 40,000 until it is applied, so below 200,000 no collection scans them.
SINK_GC_THRESHOLD = (200_000, 20, 20)


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
