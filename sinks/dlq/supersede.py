"""Whether a dead letter may be applied again: the redrive rule.

Every change of a key goes to the one partition its key hashes to, and the
sink's stored offset of that partition (`cdc_offsets`) says exactly which of
its messages the target holds. So a dead letter at offset `o` is stale when a
message of the same key lies at an offset in `o+1 .. stored-1`: the target
holds a newer version of the row (or that later change was set aside too, and
is itself the one to redrive). A table-wide event in that range (truncate,
drop, rename) makes it stale as well. Messages past the stored offset do not:
the sink applies them after the redrive, in order, over the redriven row.

That comparison needs no version on the target row and holds for every
conflict policy; it reads the partition from the dead letter to the stored
offset once per partition, whatever the number of dead letters in it. The
sink must be stopped meanwhile (`cdc dlq redrive` refuses otherwise), or a
newer change could be applied between the check and the redrive.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import orjson
from confluent_kafka import Consumer

from cdc.kafka.partition_reader import read_range
from sinks.dlq.letters import DeadLetter

Partition = tuple[str, int]


@dataclass(frozen=True)
class Verdict:
    redrive: bool
    detail: str = ""
    unknown: bool = False  # Kafka no longer holds the messages that would tell


def _norm(key: bytes | None) -> bytes | None:
    """One spelling of a JSON key (spacing and member order aside)."""
    if key is None:
        return None
    try:
        return orjson.dumps(orjson.loads(key), option=orjson.OPT_SORT_KEYS)
    except orjson.JSONDecodeError:
        return key


def _op(value: bytes | None) -> str:
    try:
        op = orjson.loads(value or b"null")["op"]
    except (orjson.JSONDecodeError, TypeError, KeyError):
        return "?"
    return str(op)


def verdicts(
    consumer: Consumer,
    letters: Sequence[DeadLetter],
    stored: Mapping[Partition, int],
    earliest: Mapping[Partition, int],
) -> dict[int, Verdict]:
    """A verdict per dead-letter id. `stored`: the sink's next offset per
    partition (none: it applied nothing there, so nothing newer is applied);
    `earliest`: the first offset Kafka still holds per partition."""
    by_partition: dict[Partition, list[DeadLetter]] = {}
    for letter in letters:
        by_partition.setdefault((letter.origin[0], letter.origin[1]), []).append(letter)
    found: dict[int, Verdict] = {}
    for partition, group in by_partition.items():
        end = stored.get(partition, 0)
        start = min(letter.origin[2] for letter in group) + 1
        low = earliest.get(partition, 0)
        wanted = {_norm(letter.key) for letter in group}
        last_of_key: dict[bytes | None, int] = {}  # the newest offset of each wanted key
        table_events: list[tuple[int, str]] = []
        for msg in read_range(consumer, partition[0], partition[1], max(start, low), end):
            offset = msg.offset() or 0
            if msg.key() is None:
                table_events.append((offset, _op(msg.value())))
                continue
            key = _norm(msg.key())
            if key in wanted:
                last_of_key[key] = offset
        where = f"{partition[0]}:{partition[1]}"
        for letter in group:
            offset = letter.origin[2]
            if offset + 1 >= end:
                found[letter.id] = Verdict(True)
                continue
            newer = last_of_key.get(_norm(letter.key), -1)
            event = next((e for e in table_events if e[0] > offset), None)
            if letter.key is not None and newer > offset:
                found[letter.id] = Verdict(
                    False, f"offset {newer} of {where} changed this key later"
                )
            elif event is not None:
                found[letter.id] = Verdict(
                    False, f"a table-wide event ({event[1]}) at offset {event[0]} of {where}"
                )
            elif low > offset + 1:
                found[letter.id] = Verdict(
                    False,
                    f"Kafka no longer holds offsets {offset + 1} to {low - 1} of {where},"
                    " where a later change of this key may have been: check the row, then"
                    " skip it or apply it by hand",
                    unknown=True,
                )
            else:
                found[letter.id] = Verdict(True)
    return found
