"""The checks `cdc cutover` makes before it stops writes on the source."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime

from cdc.engine import Sides
from cdc.migrate.positions import KafkaView, behind
from cdc.migrate.verify.record import last_verify
from cdc.settings import Settings


@dataclass(frozen=True)
class Gate:
    name: str
    passed: bool
    detail: str


def sink_lag(settings: Settings, sides: Sides, view: KafkaView) -> dict[str, tuple[float, int]]:
    """Per table topic: (seconds since the oldest message the sink has not applied
    was written to Kafka, messages it has not applied); 0 and 0 when caught up."""
    ends = view.ends()
    done = sides.target.applied_offsets(settings.consumer_group)
    left = behind(ends, done)
    now = time.time()
    lag = {topic: (0.0, 0) for topic, _ in ends}
    for (topic, partition), count in left.items():
        low = ends[(topic, partition)][0]
        stamp = view.timestamp_at(topic, partition, max(done.get((topic, partition), low), low))
        seconds = max(0.0, now - stamp) if stamp is not None else 0.0
        lag[topic] = (max(lag[topic][0], seconds), lag[topic][1] + count)
    return lag


def check_lag(settings: Settings, sides: Sides, view: KafkaView) -> Gate:
    limit = settings.cutover.max_lag_seconds
    source = sides.source.lag(settings.kafka, settings.name)
    if not source.streaming:
        return Gate(
            "lag",
            False,
            "the source is not streaming (no active slot, or no source holding the pipeline lock):"
            " start `cdc run --role source` and try again",
        )
    lag = sink_lag(settings, sides, view).values()
    messages = sum(count for _, count in lag)
    seconds = max([source.seconds or 0.0, *(s for s, _ in lag)])
    detail = f"{seconds:.1f} s behind (limit {limit:g} s), {messages} messages not yet applied"
    if source.bytes is not None:
        detail += f", {source.bytes} bytes not yet in Kafka"
    if seconds > limit:
        detail += ": let the sink catch up (is it running?) or raise cutover.max_lag_seconds"
    return Gate("lag", seconds <= limit, detail)


def check_dead_letters(settings: Settings, view: KafkaView) -> Gate:
    since: datetime | None = settings.cutover.dlq_since
    count = view.dead_letters(since)
    when = f"since {since.isoformat()}" if since else "since the pipeline started"
    if count:
        return Gate(
            "dead_letters",
            False,
            f"{count} dead letters {when} on {settings.kafka.topic_prefix}.__dlq: apply or"
            " discard them, then set cutover.dlq_since to a time after they were handled",
        )
    return Gate("dead_letters", True, f"none {when}")


def check_verify(settings: Settings, sides: Sides) -> Gate:
    if not settings.cutover.require_verify:
        return Gate("verify", True, "not required (cutover.require_verify: false)")
    found = last_verify(settings.name, sides.target)
    if found is None:
        return Gate("verify", False, "no `cdc verify` has run: run `cdc verify -c FILE` first")
    finished, equal = found
    if not equal:
        return Gate(
            "verify",
            False,
            f"the last verify ({finished.isoformat()}) found differences:"
            " repair them (or replay) and run `cdc verify` again",
        )
    return Gate("verify", True, f"equal at {finished.isoformat()}")


def check_gates(settings: Settings, sides: Sides) -> list[Gate]:
    view = KafkaView(settings)
    try:
        return [
            check_lag(settings, sides, view),
            check_dead_letters(settings, view),
            check_verify(settings, sides),
        ]
    finally:
        view.close()
