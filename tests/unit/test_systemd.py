"""sd_notify by hand: what a real unix datagram socket receives, as systemd would."""

from __future__ import annotations

import os
import signal
import socket
import uuid

import pytest

from cdc import systemd
from cdc.app.lifecycle import Stopper
from cdc.secrets import register_secret
from tests.unit.conftest import Receiver


def test_notify_is_a_no_op_outside_systemd(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    assert systemd.notify("READY=1") is False


def test_lines_arrive_in_one_datagram(receiver: Receiver) -> None:
    assert systemd.notify("READY=1", "STATUS=streaming") is True
    assert systemd.notify("WATCHDOG=1") is True
    assert receiver.messages() == [["READY=1", "STATUS=streaming"], ["WATCHDOG=1"]]


def test_abstract_namespace_socket(monkeypatch: pytest.MonkeyPatch) -> None:
    name = f"cdc-test-{uuid.uuid4().hex}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        monkeypatch.setenv("NOTIFY_SOCKET", "@" + name)
        assert systemd.notify("READY=1") is True
        assert sock.recv(4096) == b"READY=1"


def test_a_missing_socket_is_reported_not_raised(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NOTIFY_SOCKET", f"/nonexistent/{uuid.uuid4().hex}")
    assert systemd.notify("READY=1") is False


def test_status_is_one_line_without_secrets() -> None:
    register_secret("hunter2-sd-secret")
    line = systemd.status("reconnecting:\nFATAL password hunter2-sd-secret rejected\n")
    assert line == "STATUS=reconnecting: FATAL password *** rejected"
    assert len(systemd.status("x" * 1000)) == len("STATUS=") + systemd.STATUS_MAX


def test_watchdog_interval_is_half_of_watchdog_usec(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WATCHDOG_USEC", raising=False)
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    assert systemd.watchdog_interval() is None
    monkeypatch.setenv("WATCHDOG_USEC", "60000000")
    assert systemd.watchdog_interval() == 30.0
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    assert systemd.watchdog_interval() == 30.0
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid() + 1))  # the pings are someone else's
    assert systemd.watchdog_interval() is None
    monkeypatch.delenv("WATCHDOG_PID")
    for bad in ("0", "soon", ""):
        monkeypatch.setenv("WATCHDOG_USEC", bad)
        assert systemd.watchdog_interval() is None


def test_health_sends_ready_once_status_and_watchdog(
    receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WATCHDOG_USEC", "60000000")
    health = systemd.NotifyingHealth(stall_after=60.0)

    health.beat()  # still starting (an initial snapshot): ping, and keep the start alive
    health.beat()  # within the half period: nothing more
    assert receiver.messages() == [["WATCHDOG=1", "EXTEND_TIMEOUT_USEC=60000000"]]

    health.set_ready(True)
    health.set_ready(True)  # the sink says so after every batch: systemd hears it once
    health.set_ready(False)
    health.set_ready(True)
    assert receiver.messages() == [["READY=1", "STATUS=streaming"], ["STATUS=streaming"]]
    assert health.ready

    health._last_ping -= 30.0  # as if half the watchdog period had passed
    health.beat()
    assert receiver.messages() == [["WATCHDOG=1"]]


def test_health_without_watchdog_only_extends_the_start(receiver: Receiver) -> None:
    health = systemd.NotifyingHealth(stall_after=10.0)
    health.beat()
    assert receiver.messages() == [["EXTEND_TIMEOUT_USEC=10000000"]]
    health.set_ready(True)
    health._last_ping -= 10.0
    health.beat()
    assert receiver.messages() == [["READY=1", "STATUS=streaming"]]


def test_health_outside_systemd_is_plain_health(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    health = systemd.NotifyingHealth(stall_after=5.0)
    health.beat()
    health.set_ready(True)
    assert health.alive
    assert health.ready


def test_first_signal_sends_stopping(receiver: Receiver) -> None:
    stopper = Stopper()
    stopper._handle(signal.SIGTERM, None)
    assert stopper.event.is_set()
    assert receiver.messages() == [["STOPPING=1", "STATUS=stopping: draining in-flight events"]]
