"""A fenced static member: a second sink under its id is a configuration error, the echo
of its own lost session a reason to join again."""

from __future__ import annotations

import pytest
from confluent_kafka import KafkaError

from cdc.errors import TerminalError
from sinks.membership import FencedError, SessionFencedError, fatal_error

FENCED = KafkaError(
    KafkaError._FATAL,
    "Fatal error: Broker: Static consumer fenced by other consumer with same group.instance.id",
)


@pytest.mark.parametrize(
    ("since_lost_s", "expected"),
    [(None, FencedError), (30.0, SessionFencedError), (3600.0, FencedError)],
)
def test_fencing_after_a_lost_session_rejoins_and_otherwise_names_the_clash(
    since_lost_s: float | None, expected: type[Exception]
) -> None:
    error = fatal_error(FENCED, "orders", "host-0", since_lost_s)
    assert type(error) is expected
    if expected is FencedError:
        assert isinstance(error, FencedError)
        assert "sink.instance_id" in error.remedy


def test_any_other_fatal_error_stops_with_a_restart_as_the_fix() -> None:
    other = KafkaError(KafkaError._FATAL, "Fatal error: Broker: Invalid producer epoch")
    error = fatal_error(other, "orders", "host-0", 10.0)
    assert type(error) is TerminalError
    assert "restart" in error.remedy
    # a dynamic member is never fenced by id
    assert type(fatal_error(FENCED, "orders", None, None)) is TerminalError
