"""The lock-free snapshot of a large table while it is being written.

Replaying the topic per key (the last event wins, a delete removes the key)
must give the table's final contents exactly: rows changed before the
snapshot read them, after, or both; rows deleted; rows inserted; keys moved.
Also when the source is killed during the snapshot: the restart continues
after the last chunk Kafka had, and the replay is still the table.
"""

from __future__ import annotations

import random
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import orjson
import pymysql
import pytest
from confluent_kafka import KafkaException

from cdc import values
from cdc.kafka.offsets import KafkaOffsetStore
from cdc.topics import table_topic
from tests.integration.conftest import mysql_connect
from tests.integration.daemon_process import (
    DaemonProcess,
    PartitionReader,
    Record,
    key_of,
    replay,
    wait_until,
)
from tests.integration.mysql_support import OffsetsFollower, master_position, write_mysql_config

SIZES = [200_000, pytest.param(1_000_000, marks=pytest.mark.chaos)]
CHUNK_ROWS = 2000

TABLE = """
CREATE TABLE big (
    id     BIGINT PRIMARY KEY,
    n      INT NOT NULL,
    label  VARCHAR(40) NOT NULL,
    amount DECIMAL(12,2) NOT NULL,
    at     DATETIME(6) NOT NULL,
    note   TEXT NULL
)"""
LOAD = """
INSERT INTO big
SELECT seq, seq % 1000, CONCAT('row ', seq), (seq % 100000) / 100,
       TIMESTAMP'2024-01-01 00:00:00' + INTERVAL seq SECOND,
       IF(seq % 7 = 0, NULL, REPEAT('x', seq % 50))
FROM seq_{lo}_to_{hi}"""


class Churn(threading.Thread):
    """Small transactions of updates, deletes, inserts, upserts and key
    changes all over the key range, until stopped."""

    def __init__(self, dsn: str, rows: int) -> None:
        super().__init__(daemon=True)
        self.dsn = dsn
        self.rows = rows
        self.ops = 0
        self.stop = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        rng = random.Random(11)
        fresh = self.rows * 2  # new keys, above every loaded one
        try:
            with mysql_connect(self.dsn) as conn, conn.cursor() as cur:
                conn.autocommit(False)
                while not self.stop.is_set():
                    for _ in range(5):
                        fresh += 1
                        self._one(cur, rng, fresh)
                        self.ops += 1
                    conn.commit()
                    time.sleep(0.002)
        except BaseException as exc:
            self.error = exc

    def _one(self, cur: Any, rng: random.Random, fresh: int) -> None:
        row_id = rng.randrange(1, self.rows + 1)
        kind = rng.randrange(10)
        if kind < 5:
            cur.execute(
                "UPDATE big SET n = n + 1, label = CONCAT('upd ', %s), note = NULL WHERE id = %s",
                (fresh, row_id),
            )
        elif kind < 7:
            cur.execute("DELETE FROM big WHERE id = %s", (row_id,))
        elif kind < 8:
            cur.execute(
                "INSERT INTO big VALUES (%s, %s, 'new', 1.25, '2025-06-01 12:00:00.5', 'n')",
                (fresh, fresh % 1000),
            )
        elif kind < 9:
            # back from the dead, or an update if it is still there
            cur.execute(
                "INSERT INTO big VALUES (%s, -1, 'upsert', 2.50, '2025-01-01', NULL)"
                " ON DUPLICATE KEY UPDATE n = -2, amount = amount + 1",
                (row_id,),
            )
        else:
            # a key change: a delete of the old key and an insert of the new one
            cur.execute("UPDATE big SET id = %s WHERE id = %s", (fresh, row_id))


def _load(dsn: str, rows: int) -> None:
    with mysql_connect(dsn) as conn, conn.cursor() as cur:
        cur.execute(TABLE)
        for lo in range(1, rows + 1, 200_000):
            cur.execute(LOAD.format(lo=lo, hi=min(lo + 199_999, rows)))


def _table(dsn: str) -> dict[Any, dict[str, Any]]:
    """The table as its rows travel on the wire (cdc.values)."""
    with mysql_connect(dsn) as conn, conn.cursor(pymysql.cursors.SSDictCursor) as cur:
        cur.execute("SELECT * FROM big")
        return {row["id"]: orjson.loads(values.dumps(row)) for row in cur}


def _compare(replayed: dict[Any, dict[str, Any]], table: dict[Any, dict[str, Any]]) -> None:
    missing = table.keys() - replayed.keys()
    extra = replayed.keys() - table.keys()
    wrong = [k for k in table.keys() & replayed.keys() if table[k] != replayed[k]]
    assert not (missing or extra or wrong), (
        f"{len(missing)} rows missing (e.g. {sorted(missing)[:3]}),"
        f" {len(extra)} rows that are not in the table (e.g. {sorted(extra)[:3]}),"
        f" {len(wrong)} rows that differ"
        + (f" (e.g. {table[wrong[0]]} replayed as {replayed[wrong[0]]})" if wrong else "")
    )


class Run:
    """A source daemon on the test's table, with a follower of its offsets."""

    def __init__(self, tmp_path: Path, dsn: str, bootstrap: str, name: str, rows: int) -> None:
        self.database = urlsplit(dsn).path.strip("/")
        self.dsn, self.bootstrap, self.name, self.tmp = dsn, bootstrap, name, tmp_path
        _load(dsn, rows)
        self.config = write_mysql_config(
            tmp_path / "cdc.yaml",
            name,
            dsn,
            bootstrap,
            [f"{self.database}.big"],
            snapshot={"chunk_rows": CHUNK_ROWS},
        )
        self.topic = table_topic(name, self.database, "big")
        KafkaOffsetStore(bootstrap, name)
        self.follower = OffsetsFollower(bootstrap, name)
        self.follower.start()
        self.churn = Churn(dsn, rows)
        self.daemons: list[DaemonProcess] = []

    def start(self) -> DaemonProcess:
        daemon = DaemonProcess(self.config, self.tmp / f"cdc{len(self.daemons)}.log")
        self.daemons.append(daemon)
        return daemon

    def snapshot_mark(self) -> dict[str, Any]:
        return self.follower.get(f"snapshot/{self.database}.big") or {}

    def finish(self, daemon: DaemonProcess) -> list[Record]:
        """After the snapshot: stop the writes, let the source catch up, read the topic."""
        wait_until(self.follower.snapshot_complete, 600, "the snapshot to complete", daemon)
        self.churn.stop.set()
        self.churn.join(30)
        assert self.churn.error is None, self.churn.error
        self.follower.wait_stored(master_position(self.dsn), 300, daemon)
        assert daemon.stop() == 0
        reader = PartitionReader(self.bootstrap, self.topic, 2)
        try:
            return reader.read_all(timeout=300)
        finally:
            reader.close()

    def close(self) -> None:
        self.churn.stop.set()
        for daemon in self.daemons:
            if daemon.alive():
                daemon.kill9()
        self.follower.close()


def _snapshot_reads(records: list[Record]) -> list[int]:
    out = []
    for record in records:
        if record.value is not None and orjson.loads(record.value)["op"] == "r":
            out.append(key_of(record))
    return out


@pytest.mark.parametrize("rows", SIZES)
def test_snapshot_under_concurrent_writes_replays_to_the_final_table(
    tmp_path: Path, mysql_dsn: str, kafka_bootstrap: str, topic_prefix: str, rows: int
) -> None:
    run = Run(tmp_path, mysql_dsn, kafka_bootstrap, topic_prefix, rows)
    try:
        run.churn.start()
        daemon = run.start()
        wait_until(lambda: bool(run.snapshot_mark()), 120, "a first snapshot chunk", daemon)
        ops_at_start = run.churn.ops
        wait_until(run.follower.snapshot_complete, 600, "the snapshot to complete", daemon)
        during = run.churn.ops - ops_at_start
        records = run.finish(daemon)
    finally:
        run.close()
    assert during >= 100, f"only {during} changes while the snapshot ran"
    table = _table(mysql_dsn)
    _compare(replay(records), table)
    reads = _snapshot_reads(records)
    assert len(reads) == len(set(reads)), "a row was read twice"
    # the snapshot read the table as it was at some point: about `rows` keys
    assert abs(len(reads) - rows) < rows // 10
    print(f"{len(reads)} rows read, {during} changes during the snapshot, {len(table)} in the end")


@pytest.mark.parametrize("rows", SIZES)
def test_kill_9_during_the_snapshot_resumes_it_and_replays_to_the_final_table(
    tmp_path: Path, mysql_dsn: str, kafka_bootstrap: str, topic_prefix: str, rows: int
) -> None:
    run = Run(tmp_path, mysql_dsn, kafka_bootstrap, topic_prefix, rows)
    try:
        run.churn.start()
        first = run.start()

        def far_enough() -> bool:
            after = run.snapshot_mark().get("after")
            return after is not None and int(after[0]) >= rows // 3

        wait_until(far_enough, 300, f"a snapshot chunk past id {rows // 3}", first)
        first.kill9()
        mark = run.snapshot_mark()
        assert not mark["done"], "the snapshot was complete before the kill"
        time.sleep(0.5)  # the killed process's last requests land
        reader = PartitionReader(kafka_bootstrap, run.topic, 2)
        killed_ends = reader.end_offsets()
        reader.close()
        second = run.start()
        records = run.finish(second)
    finally:
        run.close()
    table = _table(mysql_dsn)
    _compare(replay(records), table)

    second_reads = [
        key_of(r)
        for r in records
        if r.offset >= killed_ends[r.partition]
        and r.value is not None
        and orjson.loads(r.value)["op"] == "r"
    ]
    # the second run continued after the last chunk Kafka had: it read fewer
    # rows than the table holds, all of them past the chunk seen stored
    assert 0 < len(second_reads) < len(table)
    assert min(second_reads) > mark["after"][0]
    assert len(second_reads) == len(set(second_reads))
    resumed = next(e for e in second.log_events() if e["event"] == "snapshot_started")
    first_started = next(e for e in first.log_events() if e["event"] == "snapshot_started")
    # and streams from the first run's snapshot position, which covers both reads
    assert (resumed["file"], resumed["pos"]) == (first_started["file"], first_started["pos"])
    print(
        f"killed after id {mark['after'][0]}; the second run read {len(second_reads)} rows;"
        f" {len(table)} rows in the end"
    )


KEYED_ROWS = 60_000


def test_kill_9_during_the_snapshot_resumes_after_a_binary_time_and_datetime_key(
    tmp_path: Path, mysql_dsn: str, kafka_bootstrap: str, topic_prefix: str
) -> None:
    """The last key read is stored in its wire form (base64 bytes, ISO
    durations and datetimes); the restart must resume after that key, not
    after its text."""
    database = urlsplit(mysql_dsn).path.strip("/")
    with mysql_connect(mysql_dsn) as conn, conn.cursor() as cur:
        cur.execute(
            "CREATE TABLE keyed (k BINARY(16) NOT NULL, at DATETIME(6) NOT NULL,"
            " span TIME(6) NOT NULL, v INT NOT NULL, PRIMARY KEY (k, at, span))"
        )
        # Four rows per k, two per (k, at): every key column decides an
        # order. Each k starts with a zero byte, far below its base64 text
        # ("A..."): resuming after the text would skip the rest of the table.
        cur.execute(
            "INSERT INTO keyed SELECT UNHEX(CONCAT('00', LEFT(MD5(seq DIV 4), 30))),"
            " TIMESTAMP'2024-01-01 00:00:00.5' + INTERVAL (seq DIV 2) SECOND,"
            " SEC_TO_TIME(CAST(seq % 2 AS SIGNED) * 7 - 3 + 0.25), seq"
            f" FROM seq_1_to_{KEYED_ROWS}"
        )
    config = write_mysql_config(
        tmp_path / "cdc.yaml",
        topic_prefix,
        mysql_dsn,
        kafka_bootstrap,
        [f"{database}.keyed"],
        snapshot={"chunk_rows": 500},
    )
    topic = table_topic(topic_prefix, database, "keyed")
    KafkaOffsetStore(kafka_bootstrap, topic_prefix)
    follower = OffsetsFollower(kafka_bootstrap, topic_prefix)
    follower.start()
    first = DaemonProcess(config, tmp_path / "first.log")
    second: DaemonProcess | None = None
    reader = PartitionReader(kafka_bootstrap, topic, 2)
    try:
        mark = f"snapshot/{database}.keyed"

        def a_third_in() -> bool:
            stored = follower.get(mark)
            return (
                stored is not None
                and stored["after"] is not None
                and (sum(reader.end_offsets().values()) >= KEYED_ROWS // 3)
            )

        wait_until(a_third_in, 120, "a third of the snapshot in Kafka", first, every=0.05)
        first.kill9()
        assert not follower.get(mark)["done"], "the snapshot was complete before the kill"
        time.sleep(0.5)  # the killed process's last requests land
        killed_ends = reader.end_offsets()
        second = DaemonProcess(config, tmp_path / "second.log")
        wait_until(follower.snapshot_complete, 120, "the snapshot to complete", second)
        assert second.stop() == 0
        records = reader.read_all()
    finally:
        reader.close()
        for daemon in (first, second):
            if daemon is not None and daemon.alive():
                daemon.kill9()
        follower.close()

    with mysql_connect(mysql_dsn) as conn, conn.cursor(pymysql.cursors.SSDictCursor) as cur:
        cur.execute("SELECT * FROM keyed")
        table = {}
        for row in cur:
            wire = orjson.loads(values.dumps(row))
            table[(wire["k"], wire["at"], wire["span"])] = wire
    _compare(replay(records), table)
    second_reads = [
        key_of(r) for r in records if r.offset >= killed_ends[r.partition] and r.value is not None
    ]
    # resumed: a restart from the first key would read every row again (how
    # far the stored mark trailed Kafka at the kill varies with the load)
    assert 0 < len(second_reads) < KEYED_ROWS
    assert len(second_reads) == len(set(second_reads))


@pytest.mark.chaos  # a million rows for a memory bound: `make test-chaos`
def test_snapshot_of_a_million_rows_in_large_chunks_stays_in_bounded_memory(
    tmp_path: Path, mysql_dsn: str, kafka_bootstrap: str, topic_prefix: str
) -> None:
    """Chunks of 100,000 rows come from the server in pieces, so neither the
    reader nor the rows waiting for Kafka hold whole chunks."""
    rows = 1_000_000
    database = urlsplit(mysql_dsn).path.strip("/")
    with mysql_connect(mysql_dsn) as conn, conn.cursor() as cur:
        cur.execute(
            "CREATE TABLE big (id BIGINT PRIMARY KEY, at DATETIME(6) NOT NULL,"
            " amount DECIMAL(12,2) NOT NULL, label VARCHAR(64) NOT NULL)"
        )
        cur.execute(
            "INSERT INTO big SELECT seq, TIMESTAMP'2024-01-01 00:00:00' + INTERVAL seq SECOND,"
            f" seq / 100, CONCAT('row ', seq, REPEAT('x', 20)) FROM seq_1_to_{rows}"
        )
    config = write_mysql_config(
        tmp_path / "cdc.yaml",
        topic_prefix,
        mysql_dsn,
        kafka_bootstrap,
        [f"{database}.big"],
        snapshot={"chunk_rows": 100_000},
    )
    reader = PartitionReader(kafka_bootstrap, table_topic(topic_prefix, database, "big"), 2)
    daemon = DaemonProcess(config, tmp_path / "cdc.log")

    def all_in_kafka() -> bool:
        try:
            return sum(reader.end_offsets().values()) >= rows
        except KafkaException:
            return False  # the topic is not there yet

    try:
        wait_until(all_in_kafka, 240, "the snapshot", daemon)
        hwm_mb = daemon.status_kb("VmHWM") / 1024
    finally:
        daemon.stop()
        reader.close()
    assert hwm_mb < 300, f"peak RSS {hwm_mb:.0f} MB"
