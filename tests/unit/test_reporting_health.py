"""A sink worker's reports to its daemon: a daemon killed with -9 stops the worker
quietly (after its committed batch), not with a BrokenPipeError traceback."""

from __future__ import annotations

import multiprocessing
import threading

from cdc.app.sink_workers import ReportingHealth


def test_a_beat_reaches_the_daemon() -> None:
    daemon_end, worker_end = multiprocessing.Pipe(duplex=False)
    stop = threading.Event()
    health = ReportingHealth(worker_end, stop)
    health.set_ready(True)
    health.beat()
    ready, _families = daemon_end.recv()
    assert ready is True
    assert not stop.is_set()


def test_a_daemon_gone_stops_the_worker_instead_of_crashing_it() -> None:
    daemon_end, worker_end = multiprocessing.Pipe(duplex=False)
    daemon_end.close()  # what kill -9 of the daemon leaves the worker
    stop = threading.Event()
    ReportingHealth(worker_end, stop).beat()
    assert stop.is_set()
