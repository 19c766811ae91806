"""DROP TABLE and RENAME TABLE on a running MariaDB source, read back from Kafka.

A table-wide event is on every partition of the table's topic, in order with
the table's rows; a rename is also on every partition of the new name's
topic, ahead of the rows written under that name.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from confluent_kafka import TopicPartition
from structlog.testing import capture_logs

from cdc.envelope import Envelope, decode_key, decode_value
from cdc.events import Op
from cdc.schemas import SCHEMA_HEADER, TableSchema
from cdc.settings import Settings
from cdc.topics import schemas_topic, table_topic
from tests.integration.conftest import mysql_connect
from tests.integration.daemon_process import PARTITIONS, end_offsets, kafka_consumer
from tests.integration.pipeline import pipeline, running_source, topic_exists, wait_until


@dataclass(frozen=True)
class Message:
    key: dict[str, Any] | None
    value: Envelope
    schema: TableSchema  # the one its header names

    @property
    def id(self) -> int:
        assert self.key is not None, self
        return int(self.key["id"])


def execute(dsn: str, *statements: str) -> None:
    with mysql_connect(dsn) as conn, conn.cursor() as cur:
        for statement in statements:
            cur.execute(statement)


def seed(dsn: str, table: str, rows: int) -> None:
    execute(
        dsn,
        f"CREATE TABLE {table} (id INT PRIMARY KEY, v VARCHAR(20) NOT NULL)",
        f"INSERT INTO {table} SELECT seq, CONCAT('v', seq) FROM seq_1_to_{rows}",
    )


def insert(dsn: str, table: str, ids: range, extra: str = "") -> None:
    """One transaction per row, as an application writes them."""
    columns = "id, v, w" if extra else "id, v"
    with mysql_connect(dsn) as conn, conn.cursor() as cur:
        for row_id in ids:
            values = f"{row_id}, 'v{row_id}'" + (f", {row_id}" if extra else "")
            cur.execute(f"INSERT INTO {table} ({columns}) VALUES ({values})")


def messages_in(bootstrap: str, topic: str) -> int:
    if not topic_exists(bootstrap, topic):
        return 0
    consumer = kafka_consumer(bootstrap)
    try:
        return sum(end_offsets(consumer, topic, PARTITIONS).values())
    finally:
        consumer.close()


def wait_for(bootstrap: str, counts: dict[str, int]) -> None:
    """Until each topic holds its number of messages (time out: say how many)."""
    seen: dict[str, int] = {}

    def arrived() -> bool:
        seen.update({topic: messages_in(bootstrap, topic) for topic in counts})
        return all(seen[topic] >= count for topic, count in counts.items())

    assert wait_until(arrived, timeout=120), f"messages per topic: {seen}, wanted {counts}"


def read(bootstrap: str, prefix: str, topic: str) -> dict[int, list[Message]]:
    """Every message of `topic` (tombstones aside), per partition in offset order."""
    schemas = read_schemas(bootstrap, prefix)
    out: dict[int, list[Message]] = {p: [] for p in range(PARTITIONS)}
    for msg in consume(bootstrap, topic, PARTITIONS):
        raw = msg.value()
        if raw is None:
            continue
        fingerprint = dict(msg.headers() or [])[SCHEMA_HEADER]
        schema = schemas[fingerprint.decode()]
        out[msg.partition()].append(Message(decode_key(msg.key()), decode_value(raw), schema))
    return out


def every(bootstrap: str, prefix: str, topic: str) -> list[Message]:
    return [m for messages in read(bootstrap, prefix, topic).values() for m in messages]


def read_schemas(bootstrap: str, prefix: str) -> dict[str, TableSchema]:
    return {
        msg.key().decode(): TableSchema.from_json(msg.value())
        for msg in consume(bootstrap, schemas_topic(prefix), 1)
    }


def consume(bootstrap: str, topic: str, partitions: int) -> list[Any]:
    """The messages of `topic` up to its current end, in offset order per partition."""
    consumer = kafka_consumer(bootstrap)
    try:
        ends = end_offsets(consumer, topic, partitions)
        consumer.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
        got: list[Any] = []
        position = dict.fromkeys(ends, 0)
        deadline = time.monotonic() + 60
        while any(position[p] < ends[p] for p in ends):
            assert time.monotonic() < deadline, f"read {position} of {ends} of {topic}"
            for msg in consumer.consume(1000, 0.5):
                partition, offset = msg.partition(), msg.offset()
                if msg.error() is None and position[partition] <= offset < ends[partition]:
                    position[partition] = offset + 1
                    got.append(msg)
        return sorted(got, key=lambda m: (m.partition(), m.offset()))
    finally:
        consumer.close()


def split_at(messages: list[Message], op: Op) -> tuple[list[Message], list[Message]]:
    """The rows before and after the one table-wide `op` of a partition."""
    at = [i for i, m in enumerate(messages) if m.key is None]
    assert len(at) == 1 and messages[at[0]].value.op is op, [m.value.op for m in messages]
    return messages[: at[0]], messages[at[0] + 1 :]


def columns(message: Message) -> list[str]:
    assert message.value.after is not None
    return list(message.value.after)


@contextmanager
def source(
    tmp_path: Path, name: str, dsn: str, bootstrap: str, *databases: str
) -> Iterator[Settings]:
    """A source pipeline on the test database (and `databases`): every table
    but those named *_gone."""
    database = urlsplit(dsn).path.strip("/")
    include = [f"{db}.*" for db in (database, *databases)]
    tables = {"include": include, "exclude": [f"{db}_gone" for db in include]}
    settings = pipeline(tmp_path, name, {"type": "mysql", "dsn": dsn, "tables": tables}, bootstrap)
    with running_source(settings):
        yield settings


def test_a_dropped_table_ends_each_partition_and_a_table_created_again_follows(
    tmp_path: Path, mysql_dsn: str, kafka_bootstrap: str, unique_name: str, topic_prefix: str
) -> None:
    database = urlsplit(mysql_dsn).path.strip("/")
    seed(mysql_dsn, "dropped", 20)
    seed(mysql_dsn, "leaving", 10)
    dropped = table_topic(topic_prefix, database, "dropped")
    leaving = table_topic(topic_prefix, database, "leaving")
    with capture_logs() as logs, source(tmp_path, unique_name, mysql_dsn, kafka_bootstrap):
        wait_for(kafka_bootstrap, {dropped: 20, leaving: 10})  # the snapshot is in
        insert(mysql_dsn, "dropped", range(21, 31))
        execute(
            mysql_dsn,
            "/* release 7 */ DROP TABLE IF EXISTS `dropped`, never_there",
            "CREATE TABLE dropped (id INT PRIMARY KEY, v VARCHAR(20) NOT NULL, w INT NOT NULL)",
        )
        insert(mysql_dsn, "dropped", range(1, 11), extra="w")
        # renamed to a name source.tables leaves out: the table leaves the stream
        insert(mysql_dsn, "leaving", range(11, 16))
        execute(mysql_dsn, "RENAME TABLE leaving TO leaving_gone")
        insert(mysql_dsn, "leaving_gone", range(16, 21))
        # a table the pipeline does not capture
        execute(mysql_dsn, "CREATE TABLE other_gone (id INT PRIMARY KEY)", "DROP TABLE other_gone")
        wait_for(
            kafka_bootstrap, {dropped: 20 + 10 + PARTITIONS + 10, leaving: 10 + 5 + PARTITIONS}
        )

    for partition, messages in read(kafka_bootstrap, topic_prefix, dropped).items():
        before, after = split_at(messages, Op.DROP)
        assert before and after, f"partition {partition}: rows on both sides of the drop"
        assert {m.value.op for m in before} == {Op.READ, Op.CREATE}
        assert all(columns(m) == ["id", "v"] for m in before)
        assert {m.value.op for m in after} == {Op.CREATE}
        assert all(columns(m) == ["id", "v", "w"] for m in after)
        drop = messages[len(before)]
        assert (drop.value.source["schema"], drop.value.source["table"]) == (database, "dropped")
        assert (drop.value.before, drop.value.after) == (None, None)
        assert (drop.schema.table, [c.name for c in drop.schema.columns]) == (
            "dropped",
            ["id", "v"],
        )
    partitions = read(kafka_bootstrap, topic_prefix, dropped).values()
    assert sorted(m.id for p in partitions for m in split_at(p, Op.DROP)[0]) == list(range(1, 31))
    assert sorted(m.id for p in partitions for m in split_at(p, Op.DROP)[1]) == list(range(1, 11))

    for messages in read(kafka_bootstrap, topic_prefix, leaving).values():
        before, after = split_at(messages, Op.DROP)
        assert after == [], "nothing of the table after it left"
    left = read(kafka_bootstrap, topic_prefix, leaving).values()
    assert sorted(m.id for p in left for m in p if m.key) == list(range(1, 16))
    assert not topic_exists(kafka_bootstrap, table_topic(topic_prefix, database, "leaving_gone"))
    assert not topic_exists(kafka_bootstrap, table_topic(topic_prefix, database, "other_gone"))

    changes = [e for e in logs if e["event"] == "schema_change"]
    assert [(e["table"], e.get("op"), e.get("renamed_to")) for e in changes] == [
        (f"{database}.dropped", "drop", None),
        (f"{database}.dropped", None, None),  # created again
        (f"{database}.leaving", "drop", f"{database}.leaving_gone"),
    ]


def test_a_renamed_table_goes_on_under_its_new_name(
    tmp_path: Path, mysql_dsn: str, kafka_bootstrap: str, unique_name: str, topic_prefix: str
) -> None:
    database = urlsplit(mysql_dsn).path.strip("/")
    for table in ("renamed", "altered"):
        seed(mysql_dsn, table, 20)
    seed(mysql_dsn, "outside_gone", 5)
    topic = {
        name: table_topic(topic_prefix, database, name)
        for name in ("renamed", "moved", "altered", "altered2", "joined")
    }
    with capture_logs() as logs, source(tmp_path, unique_name, mysql_dsn, kafka_bootstrap):
        wait_for(kafka_bootstrap, {topic["renamed"]: 20, topic["altered"]: 20})
        insert(mysql_dsn, "renamed", range(21, 31))
        execute(mysql_dsn, "RENAME TABLE `renamed` TO moved")
        insert(mysql_dsn, "moved", range(41, 51))
        execute(mysql_dsn, "UPDATE moved SET v = 'updated' WHERE id = 1")

        insert(mysql_dsn, "altered", range(21, 31))
        execute(
            mysql_dsn,
            "ALTER TABLE altered ADD COLUMN w INT NOT NULL DEFAULT 7, RENAME TO altered2",
        )
        insert(mysql_dsn, "altered2", range(41, 51), extra="w")

        # renamed into the selection: it joins from its next row
        execute(mysql_dsn, "RENAME TABLE outside_gone TO joined")
        insert(mysql_dsn, "joined", range(6, 9))
        wait_for(
            kafka_bootstrap,
            {
                topic["renamed"]: 20 + 10 + PARTITIONS,
                topic["moved"]: PARTITIONS + 10 + 1,
                topic["altered"]: 20 + 10 + PARTITIONS,
                topic["altered2"]: PARTITIONS + 10,
                topic["joined"]: 3,
            },
        )

    for old, new in (("renamed", "moved"), ("altered", "altered2")):
        renames = []
        for messages in read(kafka_bootstrap, topic_prefix, topic[old]).values():
            before, after = split_at(messages, Op.RENAME)
            assert after == [], f"nothing under {old} after the rename"
            assert all(m.value.source["table"] == old for m in before)
            renames.append(messages[-1])
        old_rows = read(kafka_bootstrap, topic_prefix, topic[old]).values()
        assert sorted(m.id for p in old_rows for m in p if m.key) == list(range(1, 31))
        for messages in read(kafka_bootstrap, topic_prefix, topic[new]).values():
            before, after = split_at(messages, Op.RENAME)
            assert before == [], f"the rename comes first on {new}"
            assert after, f"rows of {new} on each partition"
            assert all(m.value.source["table"] == new for m in after)
            assert all(m.schema.table == new for m in after)
            renames.append(messages[0])
        for rename in renames:
            assert rename.value.after == {"schema": database, "table": new}
            assert rename.value.source["table"] == old
            assert rename.schema.table == old
            assert [c.name for c in rename.schema.columns] == ["id", "v"]
        assert len(renames) == 2 * PARTITIONS

    moved = every(kafka_bootstrap, topic_prefix, topic["moved"])
    rows = sorted((m.id, m.value.op) for m in moved if m.key)
    assert rows == [(1, Op.UPDATE)] + [(i, Op.CREATE) for i in range(41, 51)]
    update = next(m for m in moved if m.value.op is Op.UPDATE)
    assert update.value.after == {"id": 1, "v": "updated"}

    altered2 = [
        m for p in read(kafka_bootstrap, topic_prefix, topic["altered2"]).values() for m in p
    ]
    rows2 = [m for m in altered2 if m.key]
    assert sorted(m.id for m in rows2) == list(range(41, 51))
    assert all(m.value.after == {"id": m.id, "v": f"v{m.id}", "w": m.id} for m in rows2)
    # the new name's first version says what the ALTER changed
    changes = {(c.kind, c.column) for m in rows2 for c in m.schema.changes}
    assert changes == {("add_column", "w")}

    joined = every(kafka_bootstrap, topic_prefix, topic["joined"])
    assert sorted((m.id, m.value.op) for m in joined) == [(i, Op.CREATE) for i in range(6, 9)]
    warned = [e for e in logs if e["event"] == "table_added_without_snapshot"]
    assert [(e["table"], e["renamed_from"]) for e in warned] == [
        (f"{database}.joined", f"{database}.outside_gone")
    ]
    logged = [(e["table"], e.get("op")) for e in logs if e["event"] == "schema_change"]
    assert logged == [(f"{database}.renamed", "rename"), (f"{database}.altered", "rename")]

    # A restart knows the tables under their new names: none is new to it.
    with capture_logs() as restart_logs, source(tmp_path, unique_name, mysql_dsn, kafka_bootstrap):
        insert(mysql_dsn, "moved", range(51, 52))
        wait_for(kafka_bootstrap, {topic["moved"]: PARTITIONS + 10 + 1 + 1})
    assert [e for e in restart_logs if e["event"] == "table_added_without_snapshot"] == []


def test_a_table_renamed_into_another_selected_database_streams_from_there(
    tmp_path: Path, mysql_dsn: str, kafka_bootstrap: str, unique_name: str, topic_prefix: str
) -> None:
    database = urlsplit(mysql_dsn).path.strip("/")
    archive = f"{database}_archive"
    seed(mysql_dsn, "archived", 20)
    execute(mysql_dsn, f"CREATE DATABASE `{archive}`")
    old = table_topic(topic_prefix, database, "archived")
    new = table_topic(topic_prefix, archive, "archived")
    try:
        with source(tmp_path, unique_name, mysql_dsn, kafka_bootstrap, archive):
            wait_for(kafka_bootstrap, {old: 20})
            # no table of that database was captured when the stream started
            execute(mysql_dsn, f"RENAME TABLE archived TO `{archive}`.archived")
            insert(mysql_dsn, f"`{archive}`.archived", range(41, 51))
            wait_for(kafka_bootstrap, {old: 20 + PARTITIONS, new: PARTITIONS + 10})
    finally:
        execute(mysql_dsn, f"DROP DATABASE IF EXISTS `{archive}`")

    for messages in read(kafka_bootstrap, topic_prefix, old).values():
        assert split_at(messages, Op.RENAME)[1] == []
        assert messages[-1].value.after == {"schema": archive, "table": "archived"}
    rows = []
    for messages in read(kafka_bootstrap, topic_prefix, new).values():
        before, after = split_at(messages, Op.RENAME)
        assert before == [] and after, [m.value.op for m in messages]
        assert messages[0].value.after == {"schema": archive, "table": "archived"}
        assert all(m.value.source["schema"] == archive for m in after)
        rows += [m.id for m in after]
    assert sorted(rows) == list(range(41, 51))
