"""`sink.workers` > 1: the sink role as several processes sharing the partitions.

One Python process cannot decode and apply faster than one core allows, so
the daemon starts N worker processes; each runs the ordinary sink loop
(`cdc.app.sink_loop.run_sink`) with its own Kafka consumer in the pipeline's group
and its own target connection. Kafka gives each partition to one consumer,
so per-key order holds, and each worker records its partitions' offsets in
the target in its own transactions: the delivery rules are those of a
single sink.

Workers are started by spawning (not forking): the daemon may already run
threads and Kafka clients (`--role all`), which a forked child would inherit
half-copied. A worker reads the configuration file itself, so its secrets
are registered for redaction as in the daemon.

Supervision: a worker killed by a signal (the OOM killer, `kill -9`) is
started again; its uncommitted batch was rolled back with its connection, so
its successor resumes at the offsets the target holds. A worker that stops
on its own (a terminal error, logged by the worker) stops the daemon with
exit 1 (2 when the worker's was a setup error). SIGTERM/SIGINT reach the
workers through the daemon, which waits for them within the grace period; a
second signal kills them at once.

Worker i is the consumer group's static member `<sink.instance_id or host
name>-<i>` (`cdc.app.sink_loop.group_instance_id`): a killed worker's member
stays in the group until Kafka's session timeout, and a new member would
wait that long for a rebalance (every other worker with it), while its
successor under the same id takes the member's place and partitions at once.
"""

from __future__ import annotations

import multiprocessing
import signal
import sys
import threading
import time
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess
from pathlib import Path

import structlog
from prometheus_client import REGISTRY

from cdc import logs, metrics
from cdc.app.lifecycle import EXIT_SETUP, Stopper, run_logged
from cdc.app.sink_loop import run_sink
from cdc.errors import SetupError, TerminalError
from cdc.health import Health
from cdc.metrics_merge import Families, MergedCollector, merge, snapshot
from cdc.settings import Settings
from cdc.settings_load import load_settings

log = structlog.get_logger(__name__)

REPORT_EVERY_S = 1.0  # how often a worker sends its readiness and metrics
WAIT_S = 0.5  # the supervisor's turn when no worker has news


class ReportingHealth(Health):
    """A worker's health: each beat also reaches the daemon (at most once per
    `REPORT_EVERY_S`), with readiness and the worker's sink metrics."""

    def __init__(self, reports: Connection, stop: threading.Event) -> None:
        super().__init__()
        self._reports = reports
        self._stop = stop
        self._sent = float("-inf")

    def beat(self) -> None:
        super().beat()
        now = time.monotonic()
        if now - self._sent >= REPORT_EVERY_S:
            try:
                self._reports.send((self.ready, snapshot(metrics.SINK_METRICS)))
            except OSError:
                # the daemon is gone (kill -9) before the watcher thread noticed: stop
                # the same way, after the batch just committed
                self._stop.set()
            self._sent = now


def worker_main(config_path: str, index: int, reports: Connection) -> None:
    """A worker process: the sink loop until the daemon says stop or goes away."""
    settings = load_settings(config_path)
    logs.configure(settings.log.format, settings.log.level)
    structlog.contextvars.bind_contextvars(worker=index)
    stopper = Stopper()
    # The daemon forwards SIGTERM and SIGINT (Ctrl-C reaches the whole process
    # group as well): every signal just means drain, the daemon escalates.
    signal.signal(signal.SIGTERM, lambda _signum, _frame: stopper.event.set())
    signal.signal(signal.SIGINT, lambda _signum, _frame: stopper.event.set())
    parent = multiprocessing.parent_process()
    if parent is not None:  # a daemon gone (kill -9) must not leave its workers running
        threading.Thread(
            target=_stop_with, args=(parent, stopper.event), name="cdc-parent", daemon=True
        ).start()
    health = ReportingHealth(reports, stopper.event)
    sys.exit(run_logged("sink", lambda: run_sink(settings, stopper, health, index)))


def _stop_with(parent: BaseProcess, stop: threading.Event) -> None:
    parent.join()
    stop.set()


class Worker:
    """One worker process and what it last reported."""

    def __init__(
        self, context: multiprocessing.context.SpawnContext, config: Path, index: int
    ) -> None:
        self.index = index
        self.reports, child_end = context.Pipe(duplex=False)
        self.process: BaseProcess = context.Process(
            target=worker_main, args=(str(config), index, child_end), name=f"cdc-sink-{index}"
        )
        self.process.start()
        child_end.close()
        self.ready = False
        self.families: Families = []
        self.reported = time.monotonic()  # start-up counts as a beat: it takes a while

    def receive(self) -> None:
        try:
            while self.reports.poll():
                self.ready, self.families = self.reports.recv()
                self.reported = time.monotonic()
        except (EOFError, OSError):
            pass  # the worker is gone: its exit status tells why


def run_sink_workers(
    settings: Settings, config: Path, stop: threading.Event, health: Health, grace_s: float
) -> None:
    """Run `settings.sink.workers` sink processes until `stop` is set."""
    context = multiprocessing.get_context("spawn")
    workers = [Worker(context, config, i) for i in range(settings.sink.workers)]
    log.info("sink_workers_started", workers=len(workers))
    # /metrics serves the workers' sink metrics, summed, instead of this process's (all zero)
    for collector in metrics.SINK_METRICS:
        REGISTRY.unregister(collector)
    # A dead worker's counts stay in the sum: a counter must not go back because
    # the process that counted is gone (its last report, up to a second old, is kept).
    retired: Families = []
    merged = MergedCollector(lambda: [retired, *(w.families for w in workers)])
    REGISTRY.register(merged)
    try:
        while not stop.is_set():
            wait([w.reports for w in workers] + [w.process.sentinel for w in workers], WAIT_S)
            for i, worker in enumerate(workers):
                worker.receive()
                if worker.process.exitcode is not None and not stop.is_set():
                    workers[i] = _restart(context, config, worker)
                    retired = merge([retired, [f for f in worker.families if f.type != "gauge"]])
            health.set_ready(all(w.ready for w in workers))
            # a worker that stopped reporting is stuck: stop beating, so the daemon is restarted
            if all(time.monotonic() - w.reported < health.stall_after for w in workers):
                health.beat()
    except SystemExit:  # a second signal: leave at once (nothing undurable was acknowledged)
        for worker in workers:
            worker.process.kill()
        raise
    finally:
        _stop(workers, grace_s)
        REGISTRY.unregister(merged)
        for collector in metrics.SINK_METRICS:
            REGISTRY.register(collector)
    log.info("sink_workers_stopped")


def _restart(context: multiprocessing.context.SpawnContext, config: Path, worker: Worker) -> Worker:
    code = worker.process.exitcode
    assert code is not None
    if code >= 0:
        # a setup error stops the daemon as one: a supervisor does not restart it into it
        error = SetupError if code == EXIT_SETUP else TerminalError
        raise error(
            f"sink worker {worker.index} stopped with exit status {code}",
            "its `stopped` log line above names the cause and the fix",
        )
    log.warning("sink_worker_restarted", worker=worker.index, signal=signal.Signals(-code).name)
    metrics.SINK_WORKER_RESTARTS.inc()
    worker.reports.close()
    return Worker(context, config, worker.index)


def _stop(workers: list[Worker], grace_s: float) -> None:
    """SIGTERM every worker, wait for their drain up to `grace_s`, kill the rest."""
    for worker in workers:
        if worker.process.exitcode is None:
            worker.process.terminate()
    deadline = time.monotonic() + grace_s
    for worker in workers:
        worker.process.join(max(0.0, deadline - time.monotonic()))
        if worker.process.exitcode is None:
            log.warning("sink_worker_killed", worker=worker.index, after_s=grace_s)
            worker.process.kill()
            worker.process.join()
        worker.reports.close()
