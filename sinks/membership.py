"""What a fatal consumer error means for a sink that is a static member of its group.

A sink process joins its consumer group under a fixed `group.instance.id`
(`cdc.app.sink_loop.group_instance_id`), so a restarted worker takes its partitions
back at once. The broker then fences whichever consumer held the id before, and
librdkafka makes that consumer fatal. Two causes, told apart by whether this
consumer lost its session before:

- another sink process joined under the same id: a configuration error, which a
  restart would only turn into fencing the other one (`FencedError`);
- this consumer's own earlier membership: Kafka was unreachable past the session
  timeout, the consumer rejoined, and a request of the old membership (an offset
  commit in flight) reached the broker afterwards (`SessionFencedError`). A new consumer
  under the same id takes the partitions back; the target's offsets say where.
"""

from __future__ import annotations

from confluent_kafka import KafkaError

from cdc.errors import SetupError, TerminalError, TransientError

# A fencing this long after a lost session is no longer taken for its echo.
ECHO_WINDOW_S = 300.0


class FencedError(SetupError):
    """Another consumer joined the group under this sink's group.instance.id: the
    broker fenced this one. Expected of a sink that is stopping anyway (its daemon
    is gone and its successor started); otherwise two sink processes share one
    static member id, and restarting either would fence the other in turn."""


class SessionFencedError(TransientError):
    """The broker fenced this consumer's own earlier membership, after its session
    was lost: the sink starts a new consumer (`cdc.app.sink_loop`)."""


def fatal_error(
    error: KafkaError, group: str, instance_id: str | None, since_lost_s: float | None
) -> TerminalError | SessionFencedError:
    """The exception for a fatal consumer `error`; `since_lost_s`: seconds since this
    consumer last lost its partitions to a session timeout, None if it never did."""
    if instance_id is None or "group.instance.id" not in error.str():
        return TerminalError(
            f"the Kafka consumer failed: {error.str()}",
            "a restart starts a new consumer; if it happens again, check the broker's log",
        )
    if since_lost_s is not None and since_lost_s < ECHO_WINDOW_S:
        return SessionFencedError(
            f"Kafka fenced static member {instance_id} of group {group} after its session"
            f" was lost {since_lost_s:.0f} s ago: joining again as a new consumer"
        )
    return FencedError(
        f"another sink process joined consumer group {group} as static member"
        f" {instance_id} (this sink's group.instance.id), and Kafka fenced this"
        " one: two sink daemons of the pipeline run under one sink.instance_id (by"
        " default the host name)",
        "give each sink daemon of this pipeline on one host its own sink.instance_id,"
        " or stop the other one (one daemon with more sink.workers does the same work)",
    )
