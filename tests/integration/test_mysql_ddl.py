"""ALTER TABLE ADD COLUMN and DROP COLUMN while rows are being written.

Each rows event decodes with the columns it was written with (the binlog's
table map, not today's catalog): on the live stream, and when a new reader
starts from a position before both ALTERs, after they are done.
"""

from __future__ import annotations

import itertools
import random
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import orjson
import pymysql
from confluent_kafka import Message

from cdc.kafka.offsets import KafkaOffsetStore
from cdc.mysql.source import POSITION_KEY
from cdc.schemas import SCHEMA_HEADER, TableSchema
from cdc.topics import schemas_topic, table_topic
from tests.integration.conftest import mysql_connect
from tests.integration.daemon_process import PartitionReader
from tests.integration.mysql_support import master_position
from tests.integration.pipeline import (
    TopicReader,
    mysql_pipeline,
    running_source,
    write_config,
)

SEEDED = 50
ER_BAD_FIELD = 1054
# The three layouts the table goes through, in order.
LAYOUTS = (
    ("id", "payload", "doomed"),
    ("id", "payload", "doomed", "added"),
    ("id", "payload", "added"),
)


class Writer(threading.Thread):
    """Inserts and updates rows, one statement per transaction, until stopped.

    It fills `doomed` (id * 3) while the column exists and `added` ("a<id>")
    once it was told the column exists; a row written between the ALTER and
    the news gets `added`'s default, "none".
    """

    def __init__(self, dsn: str) -> None:
        super().__init__(daemon=True)
        self.dsn = dsn
        self.has_doomed = True
        self.has_added = False
        self.changes: list[tuple[str, int]] = []  # (op, id) committed
        self.stop = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        rng = random.Random(7)
        try:
            with mysql_connect(self.dsn) as conn, conn.cursor() as cur:
                ids = list(range(1, SEEDED + 1))
                for n in itertools.count():
                    if self.stop.is_set():
                        break
                    if n % 3 == 0:
                        row_id = rng.choice(ids)
                        # a new value every time: an update that changes
                        # nothing leaves no row in the binlog
                        cur.execute(
                            "UPDATE evolving SET payload = CONCAT('u', id, '.', %s) WHERE id = %s",
                            (n, row_id),
                        )
                        self.changes.append(("u", row_id))
                    else:
                        row_id = SEEDED + 1 + n
                        self._insert(cur, row_id)
                        ids.append(row_id)
                        self.changes.append(("c", row_id))
                    time.sleep(0.002)
        except BaseException as exc:
            self.error = exc

    def _insert(self, cur: Any, row_id: int) -> None:
        values: dict[str, Any] = {"id": row_id, "payload": f"p{row_id}"}
        if self.has_doomed:
            values["doomed"] = row_id * 3
        if self.has_added:
            values["added"] = f"a{row_id}"
        columns = ", ".join(values)
        marks = ", ".join(["%s"] * len(values))
        try:
            cur.execute(
                f"INSERT INTO evolving ({columns}) VALUES ({marks})", tuple(values.values())
            )
        except pymysql.err.MySQLError as exc:
            if exc.args[0] != ER_BAD_FIELD or "doomed" not in values:
                raise
            self.has_doomed = False  # dropped under our feet: write without it
            self._insert(cur, row_id)


def _check_row(row: dict[str, Any] | None) -> int:
    """The row's layout (index into LAYOUTS); its values as the writer wrote them."""
    assert row is not None
    layout = LAYOUTS.index(tuple(row))
    row_id = row["id"]
    payload = row["payload"]
    assert payload == f"p{row_id}" or payload.startswith(f"u{row_id}."), row
    if "doomed" in row:
        assert row["doomed"] == row_id * 3, row
    if "added" in row:
        assert row["added"] in ("none", f"a{row_id}"), row
    return layout


def _schemas(bootstrap: str, prefix: str) -> dict[str, TableSchema]:
    reader = PartitionReader(bootstrap, schemas_topic(prefix), 1)
    try:
        records = reader.read_all()
    finally:
        reader.close()
    return {(r.key or b"").decode(): TableSchema.from_json(r.value or b"") for r in records}


def _events(messages: list[Message], schemas: dict[str, TableSchema]) -> list[dict[str, Any]]:
    """The envelopes (tombstones aside), each checked against its schema header."""
    out = []
    for message in messages:
        raw = message.value()
        if raw is None:
            continue
        value = orjson.loads(raw)
        headers = dict(message.headers() or [])
        fingerprint = headers[SCHEMA_HEADER]
        assert isinstance(fingerprint, bytes)
        schema = schemas[fingerprint.decode()]
        for image in (value["before"], value["after"]):
            if image is not None:
                assert tuple(image) == tuple(c.name for c in schema.columns), (image, schema)
        out.append(value)
    return out


def _layout_order(events: list[dict[str, Any]]) -> list[int]:
    """The layout of each streamed event, in binlog order (a transaction's
    position), checking every before and after image on the way."""
    streamed = []
    for value in events:
        if value["op"] == "r":
            continue
        layouts = {_check_row(image) for image in (value["before"], value["after"]) if image}
        assert len(layouts) == 1, value
        source = value["source"]
        streamed.append(((source["file"], source["pos"]), layouts.pop()))
    streamed.sort(key=lambda item: item[0])
    return [layout for _, layout in streamed]


def _canonical(events: list[dict[str, Any]], since: tuple[str, int]) -> list[bytes]:
    """What identifies a change, processing times left out, from `since` on."""
    out = []
    for value in events:
        source = value["source"]
        if value["op"] == "r" or (source["file"], source["pos"]) < since:
            continue
        where = (source["file"], source["pos"], source["row"])
        out.append(orjson.dumps([where, value["op"], value["before"], value["after"]]))
    return sorted(out)


def test_add_and_drop_column_under_load_decode_with_the_columns_rows_were_written_with(
    tmp_path: Path, mysql_dsn: str, kafka_bootstrap: str, unique_name: str, topic_prefix: str
) -> None:
    database = urlsplit(mysql_dsn).path.strip("/")
    with mysql_connect(mysql_dsn) as conn, conn.cursor() as cur:
        cur.execute(
            "CREATE TABLE evolving (id BIGINT PRIMARY KEY, payload VARCHAR(40) NOT NULL,"
            " doomed BIGINT NOT NULL)"
        )
        cur.execute(
            f"INSERT INTO evolving SELECT seq, CONCAT('p', seq), seq * 3 FROM seq_1_to_{SEEDED}"
        )
    tables = [f"{database}.evolving"]
    settings = mysql_pipeline(tmp_path, unique_name, mysql_dsn, kafka_bootstrap, tables)
    topic = table_topic(topic_prefix, database, "evolving")
    reader = TopicReader(kafka_bootstrap, topic)
    writer = Writer(mysql_dsn)
    try:
        with running_source(settings):
            reader.read_until(SEEDED)  # the snapshot is in: the stream runs
            writer.start()
            time.sleep(1)
            before_alter = master_position(mysql_dsn)
            time.sleep(1)
            with mysql_connect(mysql_dsn) as conn, conn.cursor() as cur:
                cur.execute(
                    "ALTER TABLE evolving ADD COLUMN added VARCHAR(20) NOT NULL DEFAULT 'none'"
                )
                writer.has_added = True
                time.sleep(1)
                cur.execute("ALTER TABLE evolving DROP COLUMN doomed")
            time.sleep(1)
            writer.stop.set()
            writer.join(30)
            assert writer.error is None, writer.error
            assert not writer.is_alive()
            expected = SEEDED + len(writer.changes)
            reader.read_until(expected)
    finally:
        writer.stop.set()
        reader.close()

    schemas = _schemas(kafka_bootstrap, topic_prefix)
    events = _events(reader.messages, schemas)
    assert len(events) == expected, f"{len(events)} events for {expected} changes"
    seen = {(v["op"], (v["after"] or v["before"])["id"]) for v in events if v["op"] != "r"}
    assert seen == set(writer.changes)
    snapshot = [v for v in events if v["op"] == "r"]
    assert [_check_row(v["after"]) for v in snapshot] == [0] * SEEDED

    order = _layout_order(events)
    # the layouts follow each other in binlog order, each one written under load
    assert order == sorted(order), "a row decoded with a layout it was not written with"
    assert {layout: order.count(layout) > 20 for layout in range(3)} == dict.fromkeys(
        range(3), True
    ), [order.count(layout) for layout in range(3)]
    assert set(schemas) == {v.fingerprint for v in schemas.values()}
    assert len(schemas) == 3, "\n".join(str(s) for s in schemas.values())

    # A new reader starting before both ALTERs, once they are done: today's
    # catalog has `added` and no `doomed`, yet every old row keeps its columns.
    replay_prefix = f"{topic_prefix}.replay"
    KafkaOffsetStore(kafka_bootstrap, replay_prefix).put(POSITION_KEY, before_alter.to_json())
    replay_settings = write_config(
        tmp_path / "replay.yaml",
        {
            "name": f"{unique_name}_replay",
            "source": {"type": "mysql", "dsn": mysql_dsn, "tables": tables},
            "kafka": {
                "bootstrap_servers": kafka_bootstrap,
                "partitions": 2,
                "topic_prefix": replay_prefix,
            },
            "metrics": {"listen": "127.0.0.1:0"},
            # it starts at the stored position: no snapshot
            "snapshot": {"mode": "never"},
        },
    )
    since = (before_alter.file, before_alter.pos)
    wanted = _canonical(events, since)
    replay_reader = TopicReader(kafka_bootstrap, table_topic(replay_prefix, database, "evolving"))
    try:
        with running_source(replay_settings):
            replay_reader.read_until(len(wanted))
    finally:
        replay_reader.close()
    replayed = _events(replay_reader.messages, _schemas(kafka_bootstrap, replay_prefix))
    assert _canonical(replayed, ("", 0)) == wanted
    replay_order = _layout_order(replayed)
    assert replay_order == sorted(replay_order)
    assert replay_order.count(0) > 20, "the replay started after the first ALTER"


def test_snapshot_and_binlog_describe_a_table_version_alike(
    tmp_path: Path, mysql_dsn: str, kafka_bootstrap: str, unique_name: str, topic_prefix: str
) -> None:
    """One table version, one fingerprint: the snapshot (information_schema)
    and the binlog (table map) name the same charsets, so sinks see one
    schema, with the server's charset names (utf8mb4, not the codec utf8)."""
    database = urlsplit(mysql_dsn).path.strip("/")
    with mysql_connect(mysql_dsn) as conn, conn.cursor() as cur:
        cur.execute(
            "CREATE TABLE charsets (id INT PRIMARY KEY, wide VARCHAR(10) CHARACTER SET utf8mb4,"
            " narrow VARCHAR(10) CHARACTER SET utf8mb3, western TEXT CHARACTER SET latin1,"
            " mood ENUM('a','b') CHARACTER SET latin1, tags SET('x','y'), raw VARBINARY(4),"
            " doc JSON, n DECIMAL(5,2))"
        )
        row = "INSERT INTO charsets VALUES (%s, '😀', 'é', 'café', 'b', 'x,y', x'00', '[1]', 1.5)"
        cur.execute(row, (1,))
    tables = [f"{database}.charsets"]
    settings = mysql_pipeline(tmp_path, unique_name, mysql_dsn, kafka_bootstrap, tables)
    reader = TopicReader(kafka_bootstrap, table_topic(topic_prefix, database, "charsets"))
    try:
        with running_source(settings):
            reader.read_until(1)
            with mysql_connect(mysql_dsn) as conn, conn.cursor() as cur:
                cur.execute(row, (2,))
            reader.read_until(2)
    finally:
        reader.close()
    schemas = _schemas(kafka_bootstrap, topic_prefix)
    events = _events(reader.messages, schemas)
    assert [v["op"] for v in events] == ["r", "c"]
    assert events[0]["after"] | {"id": 2} == events[1]["after"]
    assert len(schemas) == 1, "\n".join(str(s) for s in schemas.values())
    (schema,) = schemas.values()
    charsets = {c.name: c.extra.get("charset") for c in schema.columns}
    assert charsets == {
        "id": None,
        "wide": "utf8mb4",
        "narrow": "utf8mb3",
        "western": "latin1",
        "mood": "latin1",
        "tags": "utf8mb4",
        "raw": None,
        "doc": "utf8mb4",
        "n": None,
    }
