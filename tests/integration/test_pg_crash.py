"""kill -9 of the PostgreSQL source in the middle of a stream.

Two properties, checked on the real server and broker:
- nothing committed is lost: after a restart every row is in Kafka (a change
  may arrive twice, with the same LSN both times);
- the slot never runs ahead of Kafka: whenever PostgreSQL reports a new
  `confirmed_flush_lsn`, every transaction that committed at or before it is
  already in the topic.
"""

from __future__ import annotations

import bisect
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import orjson
import psycopg

from cdc.topics import table_topic
from tests.integration.daemon_process import (
    PARTITIONS,
    DaemonProcess,
    PartitionReader,
    current_lsn,
    end_offsets,
    kafka_consumer,
    logged,
    slot_state,
    wait_confirmed,
    wait_until,
    write_pg_config,
)

TXNS = 2000
ROWS_PER_TXN = 20
KILL_AFTER_TXNS = 700


@dataclass(frozen=True, slots=True)
class Committed:
    txn: int
    lsn: int  # pg_current_wal_insert_lsn() right after COMMIT: at or past the commit's end


@dataclass(frozen=True, slots=True)
class Sample:
    confirmed_flush: int
    ends: dict[int, int]  # the topic's high watermarks, read right after `confirmed_flush`


class Writer(threading.Thread):
    """Commits TXNS numbered transactions of ROWS_PER_TXN rows each."""

    def __init__(self, dsn: str) -> None:
        super().__init__(daemon=True)
        self.dsn = dsn
        self.committed: list[Committed] = []
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            with psycopg.connect(self.dsn) as conn:
                for txn in range(TXNS):
                    first = txn * ROWS_PER_TXN + 1
                    conn.execute(
                        "INSERT INTO numbered SELECT i, %s, 'payload ' || i"
                        " FROM generate_series(%s::bigint, %s::bigint) AS i",
                        (txn, first, first + ROWS_PER_TXN - 1),
                    )
                    conn.commit()
                    self.committed.append(Committed(txn, current_lsn(conn)))
                    conn.commit()  # the LSN query's own (empty) transaction
                    time.sleep(0.004)  # spread the load over a few seconds
        except BaseException as exc:
            self.error = exc


class Monitor(threading.Thread):
    """Each time the slot's confirmed_flush_lsn moves, reads the topic's high
    watermarks at once. The source sent that LSN only after Kafka acknowledged
    everything before it (acks=all: below the high watermark), so the
    watermarks read afterwards must cover those transactions."""

    def __init__(self, dsn: str, slot: str, bootstrap: str, topic: str) -> None:
        super().__init__(daemon=True)
        self.dsn, self.slot, self.topic = dsn, slot, topic
        self.consumer = kafka_consumer(bootstrap)
        self.samples: list[Sample] = []
        self.stop = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            last = -1
            with psycopg.connect(self.dsn, autocommit=True) as conn:
                while not self.stop.is_set():
                    confirmed = slot_state(conn, self.slot).confirmed_flush
                    if confirmed != last:
                        try:
                            ends = end_offsets(self.consumer, self.topic, PARTITIONS)
                        except Exception:  # the topic does not exist yet
                            continue
                        self.samples.append(Sample(confirmed, ends))
                        last = confirmed
                    time.sleep(0.005)
        except BaseException as exc:
            self.error = exc
        finally:
            self.consumer.close()


def test_kill_9_mid_stream_loses_nothing_and_never_confirms_ahead_of_kafka(
    tmp_path: Path, pg_dsn: str, kafka_bootstrap: str, unique_name: str, topic_prefix: str
) -> None:
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE numbered (id bigint PRIMARY KEY, txn integer, payload text)")
    config = write_pg_config(
        tmp_path / "cdc.yaml",
        unique_name,
        pg_dsn,
        kafka_bootstrap,
        ["public.numbered"],
        source={"heartbeat_interval_s": 1},
        # A long linger keeps messages in the producer for a while after they
        # were handed over: a source confirming on hand-over instead of on
        # Kafka's acknowledgement would be caught by the monitor every time.
        producer={"linger.ms": 200},
    )
    topic = table_topic(topic_prefix, "public", "numbered")
    first = DaemonProcess(config, tmp_path / "first.log")
    wait_until(
        lambda: logged(first, "streaming_started"),
        60,
        "the first source to stream",
        first,
    )
    writer = Writer(pg_dsn)
    monitor = Monitor(pg_dsn, unique_name, kafka_bootstrap, topic)
    monitor.start()
    writer.start()
    second: DaemonProcess | None = None
    try:
        # kill while transactions stream in, once the slot confirmed some of them
        wait_until(lambda: len(writer.committed) >= KILL_AFTER_TXNS, 60, "the load", first)
        first_lsn = writer.committed[0].lsn
        assert any(s.confirmed_flush >= first_lsn for s in monitor.samples), (
            "the first source confirmed nothing in the first part of the load"
        )
        first.kill9()
        killed_at = len(writer.committed)
        time.sleep(1)  # the load goes on while the source is down
        second = DaemonProcess(config, tmp_path / "second.log")
        writer.join(120)
        assert writer.error is None, writer.error
        assert not writer.is_alive()
        with psycopg.connect(pg_dsn, autocommit=True) as conn:
            end = current_lsn(conn)
        wait_confirmed(pg_dsn, unique_name, end, 120, second)
    finally:
        monitor.stop.set()
        monitor.join(30)
        if first.alive():
            first.kill9()
        if second is not None:
            second.stop()
    assert monitor.error is None, monitor.error
    assert killed_at < TXNS, "the load ended before the kill: nothing was in flight"

    reader = PartitionReader(kafka_bootstrap, topic, PARTITIONS)
    try:
        records = reader.read_all()
    finally:
        reader.close()
    # id -> (partition, first offset, LSN of every copy)
    seen: dict[int, tuple[int, int, set[int]]] = {}
    for record in records:
        assert record.key is not None and record.value is not None
        row_id = orjson.loads(record.key)["id"]
        lsn = orjson.loads(record.value)["source"]["lsn"]
        if row_id in seen:
            seen[row_id][2].add(lsn)
        else:
            seen[row_id] = (record.partition, record.offset, {lsn})

    # nothing lost
    expected = TXNS * ROWS_PER_TXN
    missing = set(range(1, expected + 1)) - seen.keys()
    assert not missing, f"{len(missing)} committed rows never reached Kafka, e.g. {min(missing)}"
    assert len(seen) == expected
    # a duplicate is the same change sent again: same LSN
    assert all(len(lsns) == 1 for _, _, lsns in seen.values())
    duplicates = len(records) - expected
    # the restart resumed from the slot's position, not from the beginning
    assert duplicates < killed_at * ROWS_PER_TXN

    # never ahead of Kafka: for each reported confirmed_flush_lsn, the rows of
    # every transaction committed at or before it were already in the topic
    committed = sorted(writer.committed, key=lambda c: c.lsn)
    lsns = [c.lsn for c in committed]
    # prefix_max[k][p]: the highest first-offset in partition p among the rows
    # of the k first transactions
    prefix_max: list[dict[int, int]] = [dict.fromkeys(range(PARTITIONS), -1)]
    for c in committed:
        row = dict(prefix_max[-1])
        first_id = c.txn * ROWS_PER_TXN + 1
        for row_id in range(first_id, first_id + ROWS_PER_TXN):
            partition, offset, _ = seen[row_id]
            row[partition] = max(row[partition], offset)
        prefix_max.append(row)
    checked = 0
    for sample in monitor.samples:
        covered = bisect.bisect_right(lsns, sample.confirmed_flush)
        for partition, highest in prefix_max[covered].items():
            assert highest < sample.ends[partition], (
                f"confirmed_flush_lsn {sample.confirmed_flush:X} covers {covered} transactions,"
                f" but partition {partition} held {sample.ends[partition]} messages"
                f" and needed offset {highest}"
            )
        checked += covered > 0
    assert checked >= 5, f"only {checked} confirmed positions covered any transaction"
    print(
        f"{len(monitor.samples)} confirmed positions checked, {duplicates} duplicates"
        f" after the kill at transaction {killed_at}"
    )
