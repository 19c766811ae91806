"""The reconnect loop as an operator sees it: how long it waits, `/readyz`, the
reconnect counter, the log line and the systemd status; how soon a server that
is back is used again, outage after outage in one run; and what stops it."""

from __future__ import annotations

import threading
from collections.abc import Callable

import psycopg
import pymysql
import pytest
import structlog
from prometheus_client import CollectorRegistry, Counter

from cdc.app.retrying import FIRST_BACKOFF_S, HEALTHY_AFTER_S, MAX_BACKOFF_S, retrying
from cdc.errors import TerminalError
from cdc.health import Health
from cdc.kafka.publisher import DeliveryError
from cdc.postgres.replication import ReplicationError
from tests.unit.conftest import Receiver

SERVER_GONE = psycopg.OperationalError("server closed the connection unexpectedly")


class Clock:
    """Time that passes only when a test says so: a backoff, an attempt at work."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class Stop(threading.Event):
    """A stop event whose waits return at once and are recorded (moving `clock` on);
    it fires on the `fire_on`-th wait (a signal during a backoff)."""

    def __init__(self, fire_on: int | None = None, clock: Clock | None = None) -> None:
        super().__init__()
        self.waits: list[float | None] = []
        self._fire_on = fire_on
        self.clock = clock or Clock()

    def wait(self, timeout: float | None = None) -> bool:
        self.waits.append(timeout)
        self.clock.now += timeout or 0.0
        if len(self.waits) == self._fire_on:
            self.set()
        return self.is_set()


Outcome = Exception | Callable[[], None] | None


class Attempts:
    """Each call plays the next outcome (None: the attempt returns; an exception:
    it raises that; a function: the attempt runs it); once they are played, a
    stop is requested."""

    def __init__(self, stop: threading.Event, *outcomes: Outcome) -> None:
        self._stop = stop
        self._outcomes = list(outcomes)
        self.calls = 0

    def __call__(self) -> None:
        self.calls += 1
        if not self._outcomes:
            self._stop.set()
            return
        outcome = self._outcomes.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        if outcome is not None:
            outcome()


class Role:
    """What one role's loop shows the operator."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.counter = Counter("cdc_test_reconnects", "reconnects", registry=self.registry)
        self.health = Health()

    @property
    def reconnects(self) -> float | None:
        return self.registry.get_sample_value("cdc_test_reconnects_total")

    def run(
        self,
        attempt: Callable[[], None],
        stop: Stop,
        recover: Callable[[], None] | None = None,
    ) -> None:
        retrying(
            attempt,
            role="source",
            stop=stop,
            health=self.health,
            reconnects=self.counter,
            recover=recover,
            clock=stop.clock,
        )


class Server:
    """A server down during `outages` ((start, end) on the test's clock), and the
    source's streaming attempt on it: refused while it is down; else connected,
    ready once caught up, and streaming (it never returns) until the next outage
    cuts it off. Records when each attempt started."""

    def __init__(self, stop: Stop, health: Health, outages: list[tuple[float, float]]) -> None:
        self._stop, self._health, self._outages = stop, health, outages
        self.attempts: list[float] = []

    def __call__(self) -> None:
        clock = self._stop.clock
        self.attempts.append(clock.now)
        if any(start <= clock.now < end for start, end in self._outages):
            raise SERVER_GONE
        self._health.set_ready(True)
        later = [start for start, _ in self._outages if start > clock.now]
        if not later:
            self._stop.set()  # the run is over
            return
        clock.now = min(later)
        raise SERVER_GONE

    def back_after(self, end: float) -> float:
        """Seconds from the server's return at `end` to the first attempt that reached it."""
        return min(t for t in self.attempts if t >= end) - end


def test_waits_double_from_half_a_second_up_to_a_few_seconds(receiver: Receiver) -> None:
    stop, role = Stop(), Role()
    with structlog.testing.capture_logs() as logs:
        role.run(Attempts(stop, *[SERVER_GONE] * 7), stop)
    assert stop.waits == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0, 4.0]
    assert (FIRST_BACKOFF_S, MAX_BACKOFF_S) == (0.5, 4.0)
    assert role.reconnects == 7
    assert logs[:2] == [
        {
            "event": "source_reconnecting",
            "error": str(SERVER_GONE),
            "in_s": 0.5,
            "log_level": "warning",
        },
        {
            "event": "source_reconnecting",
            "error": str(SERVER_GONE),
            "in_s": 1.0,
            "log_level": "warning",
        },
    ]
    statuses = receiver.messages()
    assert statuses[0] == ["STATUS=source reconnecting in 0.5 s: " + str(SERVER_GONE)]
    assert statuses[-1] == ["STATUS=source reconnecting in 4 s: " + str(SERVER_GONE)]


def test_every_outage_of_a_long_run_is_over_within_seconds_of_the_server_return() -> None:
    stop, role = Stop(), Role()
    # one long outage, then short ones: each later one would have waited up to the
    # cap had the backoff kept growing across the run
    outages = [(100.0, 160.0), (1000.0, 1003.0), (2000.0, 2001.0), (3000.0, 3000.2)]
    server = Server(stop, role.health, outages)
    role.run(server, stop)
    back = [server.back_after(end) for _, end in outages]
    assert max(back) <= MAX_BACKOFF_S
    # a short outage after streaming waits what its own length asks: 0.5, 1, 2 ... s
    assert back[1:] == pytest.approx([0.5, 0.5, 0.3])
    assert role.health.ready


def test_a_stream_that_became_ready_starts_its_next_outage_at_half_a_second() -> None:
    stop, role = Stop(), Role()

    def ready_then_gone() -> None:
        role.health.set_ready(True)  # caught up: streaming, as a healthy source does
        raise SERVER_GONE

    role.run(Attempts(stop, *[SERVER_GONE] * 4, ready_then_gone, SERVER_GONE), stop)
    assert stop.waits == [0.5, 1.0, 2.0, 4.0, 0.5, 1.0]


def test_a_long_attempt_starts_its_next_outage_over_and_a_flapping_one_does_not() -> None:
    stop, role = Stop(), Role()

    def snapshot_then_gone() -> None:  # at work for long, but not streaming yet: not ready
        stop.clock.now += HEALTHY_AFTER_S
        raise SERVER_GONE

    def connected_then_gone() -> None:  # a server that accepts and drops at once
        stop.clock.now += 1.0
        raise SERVER_GONE

    attempts = Attempts(stop, *[SERVER_GONE] * 4, snapshot_then_gone, *[connected_then_gone] * 3)
    role.run(attempts, stop)
    assert stop.waits == [0.5, 1.0, 2.0, 4.0, 0.5, 1.0, 2.0, 4.0]


def test_an_outage_is_not_ready_but_alive() -> None:
    stop, role = Stop(), Role()
    role.health.set_ready(True)
    role.health._last_beat -= role.health.stall_after  # the loop had not beaten for long
    role.run(Attempts(stop, SERVER_GONE), stop)
    assert not role.health.ready  # /readyz fails while reconnecting
    assert role.health.alive  # /healthz does not: a backoff is not a stall


def test_a_success_starts_the_next_outage_at_half_a_second_again() -> None:
    stop, role = Stop(), Role()
    role.run(Attempts(stop, SERVER_GONE, SERVER_GONE, None, SERVER_GONE), stop)
    assert stop.waits == [0.5, 1.0, 0.5]
    assert role.reconnects == 3


def test_errors_of_the_taxonomy_and_of_the_drivers_are_retried() -> None:
    stop, role = Stop(), Role()
    failures = [
        ReplicationError("replication stream ended: server shut down"),
        pymysql.err.OperationalError(2013, "Lost connection to MySQL server during query"),
        SERVER_GONE,
    ]
    attempts = Attempts(stop, *failures)
    role.run(attempts, stop)
    assert attempts.calls == 4
    assert role.reconnects == 3


def test_a_refused_login_stops_with_its_fix_instead_of_waiting() -> None:
    stop, role = Stop(), Role()
    refused = pymysql.err.OperationalError(1045, "Access denied for user 'cdc'@'10.0.0.7'")
    with pytest.raises(TerminalError) as caught:
        role.run(Attempts(stop, refused), stop)
    assert caught.value.message == "MySQL refused access: Access denied for user 'cdc'@'10.0.0.7'"
    assert "Least-privilege roles" in caught.value.remedy
    assert stop.waits == []
    assert role.reconnects == 0


@pytest.mark.parametrize(
    "error",
    [
        DeliveryError("Kafka did not accept a message: Message size too large"),
        TerminalError("the replication slot is gone", "recreate it"),
        ValueError("a bug"),
    ],
)
def test_other_errors_end_the_loop_at_once(error: Exception) -> None:
    stop, role = Stop(), Role()
    attempts = Attempts(stop, error)
    with pytest.raises(type(error)):
        role.run(attempts, stop)
    assert attempts.calls == 1
    assert stop.waits == []
    assert role.reconnects == 0


def test_a_stop_during_the_wait_ends_the_loop_without_recovering() -> None:
    stop, role = Stop(fire_on=1), Role()
    recovered: list[int] = []
    attempts = Attempts(stop, SERVER_GONE, SERVER_GONE)
    role.run(attempts, stop, recover=lambda: recovered.append(attempts.calls))
    assert attempts.calls == 1
    assert recovered == []


def test_recover_runs_after_each_wait_before_the_next_attempt() -> None:
    stop, role = Stop(), Role()
    recovered: list[int] = []
    attempts = Attempts(stop, SERVER_GONE, SERVER_GONE)
    role.run(attempts, stop, recover=lambda: recovered.append(attempts.calls))
    assert recovered == [1, 2]  # after the first and the second failed attempt
    assert attempts.calls == 3


def test_nothing_runs_once_a_stop_was_requested() -> None:
    stop, role = Stop(), Role()
    stop.set()
    attempts = Attempts(stop, SERVER_GONE)
    role.run(attempts, stop)
    assert attempts.calls == 0
