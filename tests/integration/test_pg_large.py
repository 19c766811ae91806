"""A transaction too big to hold: PostgreSQL streams it (protocol v2) and the
source buffers it to disk, so memory stays bounded while every row arrives."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import orjson
import psycopg
import pytest

from cdc.topics import table_topic
from tests.integration.daemon_process import (
    PARTITIONS,
    DaemonProcess,
    PartitionReader,
    current_lsn,
    end_offsets,
    kafka_consumer,
    logged,
    wait_confirmed,
    wait_until,
    write_pg_config,
)

ROWS = 1_000_000
RSS_LIMIT_MB = 300


@pytest.mark.chaos  # a million rows for a memory bound: `make test-chaos`
def test_one_million_row_transaction_streams_in_bounded_memory(
    tmp_path: Path, pg_dsn: str, kafka_bootstrap: str, unique_name: str, topic_prefix: str
) -> None:
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE big (id bigint PRIMARY KEY, n integer, label text)")
    config = write_pg_config(
        tmp_path / "cdc.yaml",
        unique_name,
        pg_dsn,
        kafka_bootstrap,
        ["public.big"],
        source={"heartbeat_interval_s": 1},
    )
    daemon = DaemonProcess(config, tmp_path / "cdc.log")
    peak_rss_kb = 0
    sampling = threading.Event()

    def sample() -> None:
        # VmHWM is the kernel's own peak; sampling VmRSS as well shows the
        # curve in the failure message if the peak is ever too high
        nonlocal peak_rss_kb
        while not sampling.is_set():
            peak_rss_kb = max(peak_rss_kb, daemon.status_kb("VmRSS"))
            time.sleep(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        wait_until(
            lambda: logged(daemon, "streaming_started"),
            60,
            "the source to stream",
            daemon,
        )
        started = time.monotonic()
        with psycopg.connect(pg_dsn) as conn:
            # one transaction: far more than logical_decoding_work_mem (64MB by
            # default) of changes, so the server streams it before the commit
            conn.execute(
                "INSERT INTO big SELECT i, i %% 1000, 'row ' || i || repeat('x', 20)"
                " FROM generate_series(1, %s) AS i",
                (ROWS,),
            )
            conn.commit()
            end = current_lsn(conn)
        wait_confirmed(pg_dsn, unique_name, end, 150, daemon)
        elapsed = time.monotonic() - started
        hwm_kb = daemon.status_kb("VmHWM")
    finally:
        sampling.set()
        sampler.join()
        daemon.stop()
    peak_mb = max(hwm_kb, peak_rss_kb) / 1024
    assert peak_mb < RSS_LIMIT_MB, f"peak RSS {peak_mb:.0f} MB"

    events = daemon.log_events()
    streamed = [e for e in events if e["event"] == "streamed_transaction_committed"]
    assert streamed, "the transaction was not streamed (protocol v2, streaming on)"
    assert streamed[0]["spilled"] > 0, "a 1M-row transaction must spill to disk"

    reader = PartitionReader(kafka_bootstrap, table_topic(topic_prefix, "public", "big"), 2)
    ids: set[int] = set()
    try:
        for record in reader.iter_to(reader.end_offsets(), timeout=300):
            assert record.key is not None and record.value is not None
            assert orjson.loads(record.value)["op"] == "c"
            ids.add(orjson.loads(record.key)["id"])
    finally:
        reader.close()
    # a restart in between may repeat rows, never lose one
    assert ids == set(range(1, ROWS + 1))
    print(f"1M-row transaction: {elapsed:.1f}s to Kafka, peak RSS {peak_mb:.0f} MB")


@pytest.mark.chaos
@pytest.mark.timeout(900)
def test_kill_9_while_a_streamed_transaction_is_published_loses_nothing(
    tmp_path: Path, pg_dsn: str, kafka_bootstrap: str, unique_name: str, topic_prefix: str
) -> None:
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE big (id bigint PRIMARY KEY, n integer, label text)")
    config = write_pg_config(
        tmp_path / "cdc.yaml",
        unique_name,
        pg_dsn,
        kafka_bootstrap,
        ["public.big"],
        source={"heartbeat_interval_s": 1},
    )
    topic = table_topic(topic_prefix, "public", "big")
    first = DaemonProcess(config, tmp_path / "first.log")
    second: DaemonProcess | None = None
    watch = kafka_consumer(kafka_bootstrap)
    try:
        wait_until(lambda: logged(first, "streaming_started"), 60, "the source to stream", first)
        with psycopg.connect(pg_dsn) as conn:
            conn.execute(
                "INSERT INTO big SELECT i, i %% 1000, 'row ' || i FROM generate_series(1, %s) AS i",
                (ROWS,),
            )
            conn.commit()
            end = current_lsn(conn)

        def in_kafka() -> int:
            try:
                return sum(end_offsets(watch, topic, PARTITIONS).values())
            except Exception:  # the topic does not exist yet
                return 0

        # kill while the committed stream is on its way to Kafka
        wait_until(lambda: in_kafka() >= ROWS // 3, 300, "a third of the rows", first)
        first.kill9()
        before_restart = in_kafka()
        assert before_restart < ROWS, "the whole transaction was in Kafka before the kill"
        second = DaemonProcess(config, tmp_path / "second.log")
        wait_confirmed(pg_dsn, unique_name, end, 300, second)
    finally:
        watch.close()
        if first.alive():
            first.kill9()
        if second is not None:
            second.stop()
    reader = PartitionReader(kafka_bootstrap, topic, PARTITIONS)
    try:
        lsns: dict[int, set[int]] = {}
        for record in reader.iter_to(reader.end_offsets(), timeout=300):
            assert record.key is not None and record.value is not None
            row_id = orjson.loads(record.key)["id"]
            lsns.setdefault(row_id, set()).add(orjson.loads(record.value)["source"]["lsn"])
    finally:
        reader.close()
    assert lsns.keys() == set(range(1, ROWS + 1))
    # the transaction was sent again whole: each repeated row with its first LSN
    assert all(len(seen) == 1 for seen in lsns.values())


@pytest.mark.chaos  # a million rows for a memory bound: `make test-chaos`
def test_snapshot_of_a_million_rows_in_large_chunks_stays_in_bounded_memory(
    tmp_path: Path, pg_dsn: str, kafka_bootstrap: str, unique_name: str, topic_prefix: str
) -> None:
    """The default chunks (100,000 rows) on four readers: rows reach the
    publisher in pieces, so the readers ahead of Kafka do not hold them all."""
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE big (id bigint PRIMARY KEY, n integer, label text)")
        conn.execute(
            "INSERT INTO big SELECT i, i %% 1000, 'row ' || i || repeat('x', 20)"
            " FROM generate_series(1, %s) AS i",
            (ROWS,),
        )
        conn.execute("ANALYZE big")
    config = write_pg_config(
        tmp_path / "cdc.yaml",
        unique_name,
        pg_dsn,
        kafka_bootstrap,
        ["public.big"],
        snapshot={"chunk_rows": 100_000, "parallelism": 4},
    )
    daemon = DaemonProcess(config, tmp_path / "cdc.log")
    try:
        wait_until(lambda: logged(daemon, "snapshot_complete"), 240, "the snapshot", daemon)
        hwm_mb = daemon.status_kb("VmHWM") / 1024
    finally:
        daemon.stop()
    watch = kafka_consumer(kafka_bootstrap)
    try:
        in_kafka = end_offsets(watch, table_topic(topic_prefix, "public", "big"), PARTITIONS)
    finally:
        watch.close()
    assert sum(in_kafka.values()) == ROWS
    assert hwm_mb < RSS_LIMIT_MB, f"peak RSS {hwm_mb:.0f} MB"
