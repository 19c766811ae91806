"""The dead letters as `<prefix>.__dlq` holds them (`sinks.dead_letters` writes
them), with the decisions taken on them, and reading ranges of a partition."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
from confluent_kafka import Consumer, Message, TopicPartition

from cdc.kafka.partition_reader import TIMEOUT_S, read_range
from sinks.dead_letters import source_position
from sinks.dlq.decisions import PENDING, Decision, Origin

# What `sinks.dead_letters` adds to the original message's own headers.
ADDED_HEADERS = frozenset(
    {"cdc.reason", "cdc.table", "cdc.error", "cdc.topic", "cdc.partition", "cdc.offset"}
)


class DlqInputError(ValueError):
    """The request names something that is not there: nothing was changed."""


@dataclass
class DeadLetter:
    id: int  # its offset on the dead-letter topic
    origin: Origin
    table: str  # schema.table of the source (the original topic when it did not decode)
    reason: str
    error: str
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]]  # the original message's own
    at_ms: int  # when the sink set it aside (Kafka's timestamp on the dead-letter topic)
    copies: list[int] = field(default_factory=list)  # ids of the same message set aside again
    decision: Decision | None = None

    @property
    def state(self) -> str:
        return PENDING if self.decision is None else self.decision.state

    @property
    def ids(self) -> list[int]:
        return [self.id, *self.copies]

    @property
    def position(self) -> str | None:
        """The source position of the change (PostgreSQL LSN, MySQL file:pos)."""
        return source_position(self.value)

    @property
    def source_ts_ms(self) -> int | None:
        """The source commit time, when the value is a change event."""
        try:
            ts = orjson.loads(self.value or b"null")["source"]["ts_ms"]
        except (orjson.JSONDecodeError, TypeError, KeyError):
            return None
        return ts if isinstance(ts, int) else None


def text(data: bytes | None) -> str | None:
    return None if data is None else data.decode(errors="replace")


def from_message(msg: Message, fallback_origin: Origin) -> DeadLetter:
    headers: dict[str, bytes] = {}
    own: list[tuple[str, bytes]] = []
    raw = msg.headers() or []
    pairs = list(raw.items()) if isinstance(raw, dict) else list(raw)
    for name, value in pairs:
        data = value if isinstance(value, bytes) else str(value or "").encode()
        if name in ADDED_HEADERS:
            headers[name] = data
        else:
            own.append((name, data))

    def header(name: str) -> str | None:
        return text(headers.get(name))

    try:
        origin = (
            header("cdc.topic") or "",
            int(header("cdc.partition") or ""),
            int(header("cdc.offset") or ""),
        )
    except ValueError:  # not written by the sink
        origin = fallback_origin
    return DeadLetter(
        id=msg.offset() or 0,
        origin=origin,
        table=header("cdc.table") or _table_of(msg.value()) or origin[0],
        reason=header("cdc.reason") or "",
        error=header("cdc.error") or "",
        key=msg.key(),
        value=msg.value(),
        headers=own,
        at_ms=msg.timestamp()[1],
    )


def _table_of(value: bytes | None) -> str | None:
    """schema.table a change event names (dead letters written before the
    sink added `cdc.table`)."""
    try:
        source: Any = orjson.loads(value or b"null")["source"]
        return f"{source['schema']}.{source['table']}"
    except (orjson.JSONDecodeError, TypeError, KeyError):
        return None


def read_dead_letters(consumer: Consumer, topic: str) -> list[DeadLetter]:
    """Every message of the dead-letter topic (one partition), oldest first;
    none when the topic does not exist."""
    metadata = consumer.list_topics(topic, timeout=TIMEOUT_S).topics.get(topic)
    if metadata is None or metadata.error is not None:  # never created: nothing set aside
        return []
    low, high = consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=TIMEOUT_S)
    return [
        from_message(msg, (topic, 0, msg.offset() or 0))
        for msg in read_range(consumer, topic, 0, low, high)
    ]


def with_decisions(
    letters: Iterable[DeadLetter], decisions: Mapping[int, Decision]
) -> list[DeadLetter]:
    """The dead letters with their decisions, the same message set aside again
    folded into the first: before anyone decided on it (a crash between
    sending and committing), or both decided together. One set aside again
    after a decision (a replay met it again) stands on its own, pending."""
    heads: dict[Origin, DeadLetter] = {}
    result: list[DeadLetter] = []
    for letter in letters:
        decision = decisions.get(letter.id)
        # a decision about another message: the topic was deleted and made again
        letter.decision = decision if decision and decision.origin == letter.origin else None
        head = heads.get(letter.origin)
        if head is not None and (head.decision is None) == (letter.decision is None):
            head.copies.append(letter.id)
            continue
        heads[letter.origin] = letter
        result.append(letter)
    return result


def table_matches(letter: DeadLetter, table: str) -> bool:
    """`schema.table`, or the bare table name."""
    return letter.table == table or letter.table.partition(".")[2] == table


def select(
    letters: Sequence[DeadLetter],
    ids: Sequence[str] = (),
    table: str | None = None,
    reason: str | None = None,
    known_tables: Iterable[str] = (),
) -> list[DeadLetter]:
    """The dead letters named by id (any of their copies' ids too), or of a
    table, or all; narrowed to a reason. Raises `DlqInputError` for an id
    that names none and a table the pipeline does not have."""
    chosen: list[DeadLetter] = []
    if ids:
        by_id = {i: letter for letter in letters for i in letter.ids}
        for raw in ids:
            if not raw.isdigit():
                raise DlqInputError(
                    f"{raw!r} is not a dead-letter id (a number, see `cdc dlq list`)"
                )
            letter = by_id.get(int(raw))
            if letter is None:
                raise DlqInputError(f"no dead letter {raw}{_ids_held(letters)}")
            if letter not in chosen:
                chosen.append(letter)
    else:
        chosen = list(letters)
    if table is not None:
        known = set(known_tables) | {letter.table for letter in letters}
        if not any(t == table or t.partition(".")[2] == table for t in known):
            raise DlqInputError(
                f"unknown table {table}: this pipeline's tables are"
                f" {', '.join(sorted(known)) or 'none yet'}"
            )
        chosen = [letter for letter in chosen if table_matches(letter, table)]
    if reason is not None:
        chosen = [letter for letter in chosen if letter.reason == reason]
    return chosen


def _ids_held(letters: Sequence[DeadLetter]) -> str:
    if not letters:
        return ": there are no dead letters"
    every = [i for letter in letters for i in letter.ids]
    return f" (ids held: {min(every)} to {max(every)})"
