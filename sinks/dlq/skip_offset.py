"""Moving one partition past the message at its head (`cdc dlq skip-offset`).

The head is the message the sink reads next: the partition's stored offset
in the target's `cdc_offsets` (or the first offset Kafka holds when the sink
has stored none). Only that message is skipped, so naming its offset is the
operator's confirmation of which one it is. It goes to the dead-letter topic
first (reason `skipped`), through `sinks.dead_letters` like any other, and
only then the stored offset moves one past it, through the applier's offset
commit (`Applier.apply` with no rows): nothing vanishes, and a crash in
between leaves the sink at the message, which a second run sets aside again
(folded into the first, `sinks.dlq.letters.with_decisions`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import orjson
from confluent_kafka import Consumer

from cdc.applier import Applier
from cdc.kafka.partition_reader import read_range
from sinks.dead_letters import DeadLetters
from sinks.dlq.decisions import Origin
from sinks.dlq.letters import DlqInputError
from sinks.replay import Replay

REASON = "skipped"


@dataclass(frozen=True)
class Skipped:
    topic: str
    partition: int
    offset: int  # of the message skipped
    dead_letter_id: int | None  # where it is on the dead-letter topic
    table: str


def _table(value: bytes | None) -> str | None:
    try:
        source = orjson.loads(value or b"null")["source"]
        return f"{source['schema']}.{source['table']}"
    except (orjson.JSONDecodeError, TypeError, KeyError):
        return None


def skip_head(
    kafka: Replay,
    consumer: Consumer,
    applier: Applier,
    dead: DeadLetters,
    where: Origin,
    table_of: Callable[[str], str],
) -> Skipped:
    """Set the message at the head of a partition aside and move the sink
    past it; `where` (topic, partition, offset) must name the head.
    `table_of`: the table a topic holds, for a message that does not say."""
    topic, partition, offset = where
    partitions = kafka.partitions()
    if (topic, partition) not in partitions:
        topics = sorted({t for t, _ in partitions})
        raise DlqInputError(
            f"{topic}:{partition} is not a partition of this pipeline's table topics"
            f" (its topics: {', '.join(topics) or 'none yet'})"
        )
    earliest, end = kafka.watermarks([(topic, partition)])[(topic, partition)]
    stored = applier.committed_offsets([topic]).get((topic, partition))
    head = stored if stored is not None else earliest
    if head >= end:
        raise DlqInputError(
            f"{topic}:{partition}: the sink has applied everything up to offset {head};"
            " there is no message at its head to skip"
        )
    if offset != head:
        raise DlqInputError(
            f"{topic}:{partition}: the sink stands at offset {head}, not {offset};"
            f" skip-offset skips only the message at the head (give {head})"
        )
    found = list(read_range(consumer, topic, partition, head, head + 1))
    if not found or found[0].offset() != head:
        raise DlqInputError(
            f"{topic}:{partition}: Kafka no longer holds offset {head}; the sink will"
            " start at the next message it holds"
        )
    msg = found[0]
    table = _table(msg.value()) or table_of(topic)
    dead.send(
        msg, table, REASON, f"skipped at the head of {topic}:{partition} by cdc dlq skip-offset"
    )
    dead.flush()
    applier.apply([], {(topic, partition): head + 1})
    return Skipped(topic, partition, head, dead.last_id, table)
