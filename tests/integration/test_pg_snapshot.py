"""The initial snapshot of a large table while the table keeps changing.

A consumer that replays the topic (per key, the last event wins, a delete
removes) must end with exactly the table's final contents: the snapshot and
the stream join without a gap or a stale row. Also after a kill -9 in the
middle of the snapshot, which then resumes instead of starting over.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import orjson
import psycopg
import pytest
from confluent_kafka import TopicPartition

from cdc.topics import table_topic
from tests.integration.daemon_process import (
    PARTITIONS,
    DaemonProcess,
    PartitionReader,
    Record,
    current_lsn,
    end_offsets,
    kafka_consumer,
    logged,
    replay,
    wait_confirmed,
    wait_until,
    write_pg_config,
)

SMALL = 200_000


class Churn(threading.Thread):
    """Updates, inserts, deletes and key changes on random rows, each its own
    transaction, until stopped."""

    def __init__(self, dsn: str, rows: int) -> None:
        super().__init__(daemon=True)
        self.dsn = dsn
        self.next_id = rows + 1
        self.rows = rows
        self.done = 0
        self.stop = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        rnd = random.Random(7)
        try:
            with psycopg.connect(self.dsn, autocommit=True) as conn:
                while not self.stop.is_set():
                    target = rnd.randint(1, self.next_id - 1)
                    roll = rnd.random()
                    if roll < 0.5:
                        conn.execute(
                            "UPDATE accounts SET balance = balance + 1, note = %s WHERE id = %s",
                            (f"changed {self.done}", target),
                        )
                    elif roll < 0.75:
                        conn.execute("INSERT INTO accounts VALUES (%s, 0, 'new')", (self.next_id,))
                        self.next_id += 1
                    elif roll < 0.95:
                        conn.execute("DELETE FROM accounts WHERE id = %s", (target,))
                    else:
                        # a key change: a delete of the old key, an insert of the new
                        conn.execute(
                            "UPDATE accounts SET id = %s WHERE id = %s", (self.next_id, target)
                        )
                        self.next_id += 1
                    self.done += 1
                    time.sleep(0.001)
        except BaseException as exc:
            self.error = exc


def create_accounts(dsn: str, rows: int) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE accounts (id bigint PRIMARY KEY, balance bigint, note text)")
        conn.execute(
            "INSERT INTO accounts SELECT i, i * 10, 'row ' || i FROM generate_series(1, %s) AS i",
            (rows,),
        )
        # row estimate for the planner of snapshot ranges: parallel key ranges
        conn.execute("ANALYZE accounts")


def snapshot_config(tmp_path: Path, name: str, dsn: str, bootstrap: str) -> Path:
    return write_pg_config(
        tmp_path / "cdc.yaml",
        name,
        dsn,
        bootstrap,
        ["public.accounts"],
        source={"heartbeat_interval_s": 1},
        snapshot={"chunk_rows": 2000, "parallelism": 4},
    )


def finish(churn: Churn, dsn: str, slot: str, daemon: DaemonProcess) -> None:
    """Stop the writes and wait until the source has every change in Kafka."""
    churn.stop.set()
    churn.join(30)
    assert churn.error is None, churn.error
    with psycopg.connect(dsn, autocommit=True) as conn:
        end = current_lsn(conn)
    wait_confirmed(dsn, slot, end, 180, daemon)


def assert_replay_equals_table(
    dsn: str, bootstrap: str, topic: str, since: dict[int, int] | None = None
) -> int:
    """Replays the topic and compares it with the table. Returns how many
    snapshot reads (`r`) the topic holds at or past the offsets `since`."""
    reader = PartitionReader(bootstrap, topic, PARTITIONS)
    starts = since or dict.fromkeys(range(PARTITIONS), 0)
    reads = 0

    def counted() -> Iterator[Record]:
        nonlocal reads
        for record in reader.iter_to(reader.end_offsets(), timeout=300):
            if record.offset >= starts[record.partition] and record.value is not None:
                reads += orjson.loads(record.value)["op"] == "r"
            yield record

    try:
        replayed = replay(counted())
    finally:
        reader.close()
    with psycopg.connect(dsn) as conn:
        table = {
            row[0]: {"id": row[0], "balance": row[1], "note": row[2]}
            for row in conn.execute("SELECT id, balance, note FROM accounts")
        }
    missing = table.keys() - replayed.keys()
    extra = replayed.keys() - table.keys()
    stale = [k for k in table.keys() & replayed.keys() if table[k] != replayed[k]]
    assert not (missing or extra or stale), (
        f"replay differs from the table: {len(missing)} rows missing (e.g. {sorted(missing)[:5]}),"
        f" {len(extra)} rows extra (e.g. {sorted(extra)[:5]}),"
        f" {len(stale)} rows stale (e.g. {[(table[k], replayed[k]) for k in stale[:3]]})"
    )
    return reads


def snapshot_under_writes(
    tmp_path: Path, dsn: str, bootstrap: str, name: str, prefix: str, rows: int
) -> None:
    create_accounts(dsn, rows)
    config = snapshot_config(tmp_path, name, dsn, bootstrap)
    churn = Churn(dsn, rows)
    churn.start()
    daemon = DaemonProcess(config, tmp_path / "cdc.log")
    try:
        wait_until(lambda: logged(daemon, "snapshot_complete"), 240, "the snapshot", daemon)
        during = churn.done
        finish(churn, dsn, name, daemon)
    finally:
        churn.stop.set()
        daemon.stop()
    assert during > 100, f"only {during} writes ran during the snapshot"
    assert_replay_equals_table(dsn, bootstrap, table_topic(prefix, "public", "accounts"))


def test_snapshot_under_concurrent_writes_replays_to_the_table(
    tmp_path: Path, pg_dsn: str, kafka_bootstrap: str, unique_name: str, topic_prefix: str
) -> None:
    snapshot_under_writes(tmp_path, pg_dsn, kafka_bootstrap, unique_name, topic_prefix, SMALL)


@pytest.mark.chaos
@pytest.mark.timeout(900)
def test_million_row_snapshot_under_concurrent_writes_replays_to_the_table(
    tmp_path: Path, pg_dsn: str, kafka_bootstrap: str, unique_name: str, topic_prefix: str
) -> None:
    snapshot_under_writes(tmp_path, pg_dsn, kafka_bootstrap, unique_name, topic_prefix, 1_000_000)


def test_snapshot_killed_midway_resumes_and_replays_to_the_table(
    tmp_path: Path, pg_dsn: str, kafka_bootstrap: str, unique_name: str, topic_prefix: str
) -> None:
    create_accounts(pg_dsn, SMALL)
    config = snapshot_config(tmp_path, unique_name, pg_dsn, kafka_bootstrap)
    topic = table_topic(topic_prefix, "public", "accounts")
    churn = Churn(pg_dsn, SMALL)
    churn.start()
    first = DaemonProcess(config, tmp_path / "first.log")
    second: DaemonProcess | None = None
    watch = kafka_consumer(kafka_bootstrap)

    def in_kafka() -> int:
        try:
            return sum(
                watch.get_watermark_offsets(TopicPartition(topic, p), timeout=5)[1]
                for p in range(PARTITIONS)
            )
        except Exception:  # the topic does not exist yet
            return 0

    try:
        wait_until(lambda: in_kafka() >= SMALL * 0.3, 120, "a third of the snapshot", first, 0.02)
        first.kill9()
        assert not logged(first, "snapshot_complete"), "the snapshot ended before the kill"
        first_run = end_offsets(watch, topic, PARTITIONS)
        second = DaemonProcess(config, tmp_path / "second.log")
        wait_until(lambda: logged(second, "snapshot_complete"), 240, "the resumed snapshot", second)
        finish(churn, pg_dsn, unique_name, second)
    finally:
        churn.stop.set()
        watch.close()
        if first.alive():
            first.kill9()
        if second is not None:
            second.stop()

    second_reads = assert_replay_equals_table(pg_dsn, kafka_bootstrap, topic, first_run)
    # the second run read what the first had not acknowledged, not the whole table
    first_reads = sum(first_run.values())
    assert first_reads >= SMALL * 0.3
    assert 0 < second_reads < SMALL - first_reads / 2, (
        f"the resumed snapshot read {second_reads} rows after {first_reads} were in Kafka"
    )
    print(f"snapshot reads: {first_reads} before the kill, {second_reads} after the restart")
