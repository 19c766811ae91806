"""DROP TABLE and ALTER TABLE ... RENAME TO on the PostgreSQL source, on the real
server and broker: each becomes an event on every partition of the table's topic,
after the table's last rows (a rename also on every partition of the new name's
topic, before the first rows under it), and the source goes on streaming."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
from confluent_kafka import Consumer

from cdc.envelope import Envelope, decode_value
from cdc.events import Op
from cdc.topics import table_topic
from tests.integration.conftest import pg_execute
from tests.integration.pipeline import pg_pipeline, running_source, topic_exists

PARTITIONS = 2  # pg_pipeline's
TABLE = "CREATE TABLE {} (id int PRIMARY KEY, note text)"
INSERT = "INSERT INTO {} SELECT i, %s FROM generate_series(%s::int, %s::int) i"


class Partitions:
    """A topic read from its beginning: each partition's messages in order,
    as (key id or None, envelope), tombstones left out."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self.topic = topic
        self._consumer = Consumer(
            {
                "bootstrap.servers": bootstrap,
                "group.id": f"test-reader-{time.time_ns()}",
                "auto.offset.reset": "earliest",
                "enable.auto.commit": False,
                "topic.metadata.refresh.interval.ms": 500,
            }
        )
        self._consumer.subscribe([topic])
        self.messages: dict[int, list[tuple[int | None, Envelope]]] = {}

    def read_until(self, done: Callable[[Partitions], bool], timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while not done(self) and time.monotonic() < deadline:
            msg = self._consumer.poll(0.2)
            if msg is None or msg.error() is not None or msg.value() is None:
                continue
            key = orjson.loads(msg.key())["id"] if msg.key() else None
            partition = msg.partition()
            assert partition is not None
            self.messages.setdefault(partition, []).append((key, decode_value(msg.value())))

    def ids(self) -> set[int]:
        return {k for messages in self.messages.values() for k, _ in messages if k is not None}

    def events(self, op: Op) -> list[Envelope]:
        return [e for messages in self.messages.values() for _, e in messages if e.op is op]

    def on_every_partition(self, op: Op) -> bool:
        return all(any(e.op is op for _, e in self.messages.get(p, [])) for p in range(PARTITIONS))

    def close(self) -> None:
        self._consumer.close()


def has(ids: set[int], *ops: Op) -> Callable[[Partitions], bool]:
    """Every id of `ids` read, and each op of `ops` on every partition."""
    return lambda topic: ids <= topic.ids() and all(topic.on_every_partition(op) for op in ops)


def split_at(messages: list[tuple[int | None, Envelope]], op: Op) -> tuple[list[Any], list[Any]]:
    """The messages before the partition's one `op` event and after it."""
    at = [i for i, (_, e) in enumerate(messages) if e.op is op]
    assert len(at) == 1, f"one {op} per partition, got {len(at)}"
    return messages[: at[0]], messages[at[0] + 1 :]


def ids_of(messages: list[tuple[int | None, Envelope]]) -> set[int]:
    return {k for k, _ in messages if k is not None}


def test_renamed_and_dropped_tables_reach_every_partition_in_order(
    tmp_path: Path, pg_dsn: str, kafka_bootstrap: str, topic_prefix: str
) -> None:
    for name in ("moved", "retiring", "dropped", "steady"):
        pg_execute(pg_dsn, TABLE.format(name))
        pg_execute(pg_dsn, INSERT.format(name), "snapshot", 1, 20)
    settings = pg_pipeline(
        tmp_path,
        topic_prefix,
        pg_dsn,
        kafka_bootstrap,
        {"include": ["public.*"], "exclude": ["public.retired_*"]},
        heartbeat_interval_s=1,
    )

    def topic(name: str) -> Partitions:
        return Partitions(kafka_bootstrap, table_topic(topic_prefix, "public", name))

    moved, retiring, dropped, steady = (
        topic(n) for n in ("moved", "retiring", "dropped", "steady")
    )
    moved_new = topic("moved_new")
    try:
        with running_source(settings):
            steady.read_until(has(set(range(1, 21))))
            assert steady.ids() == set(range(1, 21)), "the snapshot did not arrive"
            pg_execute(pg_dsn, INSERT.format("moved"), "streamed", 21, 30)
            pg_execute(pg_dsn, "ALTER TABLE moved RENAME TO moved_new")
            pg_execute(pg_dsn, INSERT.format("moved_new"), "renamed", 31, 40)
            pg_execute(pg_dsn, INSERT.format("retiring"), "streamed", 21, 30)
            pg_execute(pg_dsn, "ALTER TABLE retiring RENAME TO retired_x")
            pg_execute(pg_dsn, INSERT.format("retired_x"), "not captured", 31, 40)
            pg_execute(pg_dsn, INSERT.format("dropped"), "streamed", 21, 30)
            pg_execute(pg_dsn, "DROP TABLE dropped")

            moved.read_until(has(set(range(1, 31)), Op.RENAME))
            moved_new.read_until(has(set(range(31, 41)), Op.RENAME))
            retiring.read_until(has(set(range(1, 31)), Op.DROP))
            dropped.read_until(has(set(range(1, 31)), Op.DROP))
            # the source goes on streaming the other tables
            pg_execute(pg_dsn, INSERT.format("steady"), "after", 21, 30)
            steady.read_until(has(set(range(1, 31))))

        # the old name: every row, then the rename, on each partition
        assert moved.ids() == set(range(1, 31))
        for partition in range(PARTITIONS):
            before, after = split_at(moved.messages[partition], Op.RENAME)
            assert after == []
            assert all(e.op in (Op.READ, Op.CREATE) for _, e in before)
        assert [e.after for e in moved.events(Op.RENAME)] == [
            {"schema": "public", "table": "moved_new"}
        ] * PARTITIONS
        assert {e.source["table"] for e in moved.events(Op.RENAME)} == {"moved"}
        # the new name: the rename, then the rows written under it
        renamed = []
        for partition in range(PARTITIONS):
            before, after = split_at(moved_new.messages[partition], Op.RENAME)
            assert before == []
            renamed += after
        assert ids_of(renamed) == set(range(31, 41))
        assert {(e.op, e.after["note"]) for _, e in renamed} == {(Op.CREATE, "renamed")}
        # renamed out of source.tables: a drop of the old name, and nothing after
        for name, partitions in (("retiring", retiring), ("dropped", dropped)):
            assert partitions.ids() == set(range(1, 31)), name
            for partition in range(PARTITIONS):
                before, after = split_at(partitions.messages[partition], Op.DROP)
                assert after == [], name  # every row before it
            assert all(e.before is None and e.after is None for e in partitions.events(Op.DROP))
        assert not topic_exists(kafka_bootstrap, table_topic(topic_prefix, "public", "retired_x"))
        assert steady.ids() == set(range(1, 31))
        assert steady.events(Op.DROP) == steady.events(Op.RENAME) == []

        # A restart knows the renamed table: it streams it, without copying it
        # again, and owes no event again.
        with running_source(settings):
            pg_execute(pg_dsn, INSERT.format("moved_new"), "restarted", 41, 41)
            pg_execute(pg_dsn, INSERT.format("steady"), "restarted", 31, 31)
            steady.read_until(has({31}))
            moved_new.read_until(has({41}))
            time.sleep(2)  # what a restart might have added
            for partitions in (moved, moved_new, retiring, dropped, steady):
                partitions.read_until(lambda _: False, timeout=1)
        assert moved_new.ids() == set(range(31, 42))
        assert Op.READ not in {e.op for m in moved_new.messages.values() for _, e in m}
        assert len(moved.events(Op.RENAME)) == len(moved_new.events(Op.RENAME)) == PARTITIONS
        assert len(retiring.events(Op.DROP)) == len(dropped.events(Op.DROP)) == PARTITIONS
    finally:
        for partitions in (moved, moved_new, retiring, dropped, steady):
            partitions.close()


def test_a_table_dropped_and_created_again_starts_afresh_after_the_drop(
    tmp_path: Path, pg_dsn: str, kafka_bootstrap: str, topic_prefix: str
) -> None:
    for name in ("again", "steady"):
        pg_execute(pg_dsn, TABLE.format(name))
        pg_execute(pg_dsn, INSERT.format(name), "old", 1, 20)
    settings = pg_pipeline(
        tmp_path,
        topic_prefix,
        pg_dsn,
        kafka_bootstrap,
        {"include": ["public.*"]},
        heartbeat_interval_s=1,
    )
    again = Partitions(kafka_bootstrap, table_topic(topic_prefix, "public", "again"))
    steady = Partitions(kafka_bootstrap, table_topic(topic_prefix, "public", "steady"))
    try:
        with running_source(settings):
            again.read_until(has(set(range(1, 21))))
            assert again.ids() == set(range(1, 21)), "the snapshot did not arrive"
            # within one catalog scan: the stream never sees the table missing
            pg_execute(pg_dsn, "DROP TABLE again")
            pg_execute(pg_dsn, TABLE.format("again"))
            pg_execute(pg_dsn, INSERT.format("again"), "new", 101, 110)
            again.read_until(has(set(range(101, 111)), Op.DROP))
            pg_execute(pg_dsn, INSERT.format("again"), "new", 111, 115)
            pg_execute(pg_dsn, INSERT.format("steady"), "after", 21, 25)
            again.read_until(has(set(range(101, 116))))
            steady.read_until(has(set(range(1, 26))))
        for partition in range(PARTITIONS):
            before, after = split_at(again.messages[partition], Op.DROP)
            assert ids_of(before) <= set(range(1, 21))
            assert ids_of(after) <= set(range(101, 116))
            assert {e.after["note"] for _, e in after} == {"new"}
        assert again.ids() == set(range(1, 21)) | set(range(101, 116))
        assert steady.ids() == set(range(1, 26))
    finally:
        again.close()
        steady.close()


def test_tables_dropped_or_renamed_while_the_source_was_down_are_followed_at_start(
    tmp_path: Path, pg_dsn: str, kafka_bootstrap: str, topic_prefix: str
) -> None:
    for name in ("gone", "renamed", "steady"):
        pg_execute(pg_dsn, TABLE.format(name))
        pg_execute(pg_dsn, INSERT.format(name), "snapshot", 1, 10)
    settings = pg_pipeline(
        tmp_path, topic_prefix, pg_dsn, kafka_bootstrap, {"include": ["public.*"]},
        heartbeat_interval_s=1,
    )  # fmt: skip

    def topic(name: str) -> Partitions:
        return Partitions(kafka_bootstrap, table_topic(topic_prefix, "public", name))

    gone, renamed, renamed_new, steady = (
        topic(n) for n in ("gone", "renamed", "renamed_new", "steady")
    )
    try:
        with running_source(settings):
            steady.read_until(has(set(range(1, 11))))
            assert steady.ids() == set(range(1, 11)), "the snapshot did not arrive"
        pg_execute(pg_dsn, "DROP TABLE gone")
        pg_execute(pg_dsn, "ALTER TABLE renamed RENAME TO renamed_new")
        pg_execute(pg_dsn, INSERT.format("renamed_new"), "while down", 11, 15)
        with running_source(settings):
            gone.read_until(has(set(range(1, 11)), Op.DROP))
            renamed.read_until(has(set(range(1, 11)), Op.RENAME))
            renamed_new.read_until(has(set(range(11, 16)), Op.RENAME))
            pg_execute(pg_dsn, INSERT.format("steady"), "after", 11, 12)
            steady.read_until(has(set(range(1, 13))))
        for partition in range(PARTITIONS):
            assert split_at(gone.messages[partition], Op.DROP)[1] == []
            assert split_at(renamed.messages[partition], Op.RENAME)[1] == []
            assert split_at(renamed_new.messages[partition], Op.RENAME)[0] == []
        # the renamed table is not copied as a new one: only its changes follow
        assert ids_of(renamed_new.messages[0] + renamed_new.messages[1]) == set(range(11, 16))
        assert {e.op for m in renamed_new.messages.values() for _, e in m} == {
            Op.RENAME,
            Op.CREATE,
        }
        assert steady.ids() == set(range(1, 13))
    finally:
        for partitions in (gone, renamed, renamed_new, steady):
            partitions.close()
