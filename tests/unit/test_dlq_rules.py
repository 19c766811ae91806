"""The rules of `cdc dlq` that need no server: which dead letters are one
(copies folded, a copy after a decision pending again), what an id or a
table names, and the redrive rule over a partition's later messages."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

import pytest
from confluent_kafka import Consumer, KafkaError

from sinks.dlq.decisions import REDRIVEN, Decision
from sinks.dlq.letters import DeadLetter, DlqInputError, select, with_decisions
from sinks.dlq.supersede import verdicts

TOPIC = "shop.public.items"


def letter(
    id_: int, offset: int, key: bytes | None = b'{"id":1}', partition: int = 0
) -> DeadLetter:
    return DeadLetter(
        id_, (TOPIC, partition, offset), "public.items", "apply", "", key, b"{}", [], 0
    )


def test_a_message_set_aside_twice_before_a_decision_is_one_dead_letter() -> None:
    letters = with_decisions([letter(0, 5), letter(1, 6), letter(2, 5)], {})
    assert [(one.id, one.copies) for one in letters] == [(0, [2]), (1, [])]
    # its copies' ids name it too
    assert select(letters, ["2"]) == [letters[0]]


def test_a_copy_after_a_decision_is_a_new_pending_dead_letter() -> None:
    decided = {0: Decision(0, (TOPIC, 0, 5), REDRIVEN, "applied")}
    letters = with_decisions([letter(0, 5), letter(3, 5)], decided)
    assert [(one.id, one.state, one.copies) for one in letters] == [
        (0, "redriven", []),
        (3, "pending", []),
    ]


def test_a_decision_about_another_message_is_not_this_ones() -> None:
    # the topic was deleted and made again: id 0 is now another message
    decided = {0: Decision(0, (TOPIC, 1, 99), REDRIVEN, "applied")}
    (only,) = with_decisions([letter(0, 5)], decided)
    assert only.state == "pending"


def test_ids_and_tables_that_are_not_there_are_refused() -> None:
    letters = with_decisions([letter(0, 5), letter(1, 6)], {})
    with pytest.raises(DlqInputError, match=r"no dead letter 7 \(ids held: 0 to 1\)"):
        select(letters, ["7"])
    with pytest.raises(DlqInputError, match="is not a dead-letter id"):
        select(letters, ["-1"])
    with pytest.raises(DlqInputError, match="there are no dead letters"):
        select([], ["0"])
    with pytest.raises(DlqInputError, match=r"unknown table nosuch: .* public\.items"):
        select(letters, table="nosuch", known_tables=["public.orders"])
    # a table of the pipeline without dead letters: none, no error
    assert select(letters, table="public.orders", known_tables=["public.orders"]) == []
    assert select(letters, table="items") == letters  # the bare name will do
    assert select(letters, reason="decode") == []


class Msg:
    def __init__(self, offset: int, key: bytes | None, value: bytes = b"{}") -> None:
        self._offset, self._key, self._value = offset, key, value

    def offset(self) -> int:
        return self._offset

    def key(self) -> bytes | None:
        return self._key

    def value(self) -> bytes:
        return self._value

    def error(self) -> Any:
        return None


class EndOfPartition(Msg):
    """What librdkafka says at the end of a partition (`enable.partition.eof`)."""

    def __init__(self) -> None:
        super().__init__(-1, None)

    def error(self) -> Any:
        return KafkaError(KafkaError._PARTITION_EOF)


class Partition:
    """A consumer over one partition's messages (offset -> message)."""

    def __init__(self, messages: Sequence[Msg]) -> None:
        self._messages = messages
        self._start = 0
        self.read: list[tuple[int, int]] = []  # (start, offsets returned)

    def assign(self, partitions: Sequence[Any]) -> None:
        self._start = partitions[0].offset

    def consume(self, count: int, timeout: float) -> list[Msg]:
        found = [m for m in self._messages if m.offset() >= self._start]
        self.read.append((self._start, len(found)))
        return [*found, EndOfPartition()]

    def unassign(self) -> None:
        pass


def judge(
    messages: Sequence[Msg], letters: Sequence[DeadLetter], stored: int, earliest: int = 0
) -> dict[int, tuple[bool, str]]:
    consumer = cast(Consumer, Partition(messages))
    found = verdicts(consumer, letters, {(TOPIC, 0): stored}, {(TOPIC, 0): earliest})
    return {i: (v.redrive, v.detail) for i, v in found.items()}


def test_a_dead_letter_is_redriven_unless_a_later_change_of_its_key_was_applied() -> None:
    messages = [
        Msg(5, b'{"id":1}'),  # the dead letter itself
        Msg(6, b'{"id": 2}'),
        Msg(7, b'{ "id" : 1 }'),  # the same key, spelt otherwise: applied later
        Msg(8, b'{"id":3}'),  # past the sink's position: applied after the redrive
    ]
    letters = [letter(0, 5), letter(1, 6, b'{"id":2}'), letter(2, 4, b'{"id":3}')]
    assert judge(messages, letters, stored=8) == {
        0: (False, f"offset 7 of {TOPIC}:0 changed this key later"),
        1: (True, ""),
        2: (True, ""),  # its later change (8) is not applied yet
    }


def test_a_table_wide_event_after_a_dead_letter_supersedes_it() -> None:
    messages = [Msg(5, b'{"id":1}'), Msg(6, None, b'{"op": "t"}')]
    assert judge(messages, [letter(0, 5)], stored=7) == {
        0: (False, f"a table-wide event (t) at offset 6 of {TOPIC}:0")
    }


def test_a_dead_letter_whose_later_messages_kafka_dropped_is_not_redriven() -> None:
    found = verdicts(
        cast(Consumer, Partition([Msg(9, b'{"id":2}')])),
        [letter(0, 5)],
        {(TOPIC, 0): 10},
        {(TOPIC, 0): 9},
    )
    assert not found[0].redrive and found[0].unknown
    assert "no longer holds offsets 6 to 8" in found[0].detail


def test_at_the_sinks_position_there_is_nothing_later_to_read() -> None:
    consumer = Partition([Msg(5, b'{"id":1}')])
    found = verdicts(cast(Consumer, consumer), [letter(0, 5)], {(TOPIC, 0): 6}, {})
    assert found[0].redrive and consumer.read == []
