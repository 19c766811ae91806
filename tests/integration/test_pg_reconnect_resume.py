"""A replication connection lost under load (PostgreSQL terminated the
walsender, as on a server restart or a network reset): the source process
reconnects and resumes after the last transaction Kafka acknowledged, not at
the slot's confirmed_flush_lsn, which trails it by up to a status interval.
Every row reaches the topic exactly once: a duplicate would replay an old
change on the sink (a dead letter when a later delete removed the row)."""

from __future__ import annotations

import threading
import time
from collections import Counter
from pathlib import Path

import orjson
import psycopg

from cdc.topics import table_topic
from tests.integration.daemon_process import (
    PARTITIONS,
    DaemonProcess,
    PartitionReader,
    current_lsn,
    logged,
    wait_confirmed,
    wait_until,
    write_pg_config,
)

ROWS_PER_TXN = 3
TXN_EVERY_S = 0.004
KILLS = 3
KILL_EVERY_S = 1.5


class Writer(threading.Thread):
    """Commits numbered transactions of ROWS_PER_TXN rows until stopped."""

    def __init__(self, dsn: str) -> None:
        super().__init__(daemon=True)
        self.dsn = dsn
        self.txns = 0
        self.stop = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            with psycopg.connect(self.dsn) as conn:
                while not self.stop.is_set():
                    first = self.txns * ROWS_PER_TXN + 1
                    conn.execute(
                        "INSERT INTO numbered SELECT i, 'payload ' || i"
                        " FROM generate_series(%s::bigint, %s::bigint) AS i",
                        (first, first + ROWS_PER_TXN - 1),
                    )
                    conn.commit()
                    self.txns += 1
                    time.sleep(TXN_EVERY_S)
        except BaseException as exc:
            self.error = exc


def walsender(conn: psycopg.Connection[tuple[int | None]], slot: str) -> int | None:
    row = conn.execute(
        "SELECT active_pid FROM pg_replication_slots WHERE slot_name = %s", (slot,)
    ).fetchone()
    return None if row is None else row[0]


def test_lost_replication_connection_resumes_after_what_kafka_acknowledged(
    tmp_path: Path, pg_dsn: str, kafka_bootstrap: str, unique_name: str, topic_prefix: str
) -> None:
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE numbered (id bigint PRIMARY KEY, payload text)")
    config = write_pg_config(
        tmp_path / "cdc.yaml", unique_name, pg_dsn, kafka_bootstrap, ["public.numbered"]
    )
    daemon = DaemonProcess(config, tmp_path / "cdc.log")
    writer = Writer(pg_dsn)
    killed: list[int] = []
    try:
        wait_until(lambda: logged(daemon, "streaming_started"), 60, "the source to stream", daemon)
        writer.start()
        with psycopg.connect(pg_dsn, autocommit=True) as conn:
            for _ in range(KILLS):
                time.sleep(KILL_EVERY_S)  # the stream and its acknowledgements go on meanwhile
                # the walsender of the source's current connection (a new one after a kill)
                wait_until(
                    lambda: walsender(conn, unique_name) not in (None, *killed),
                    30,
                    "the source to stream again",
                    daemon,
                )
                pid = walsender(conn, unique_name)
                assert pid is not None
                conn.execute("SELECT pg_terminate_backend(%s)", (pid,))
                killed.append(pid)
            time.sleep(KILL_EVERY_S)
            writer.stop.set()
            writer.join(30)
            assert writer.error is None, writer.error
            end = current_lsn(conn)
        wait_confirmed(pg_dsn, unique_name, end, 60, daemon)
        daemon.assert_alive()
        reconnects = sum(e["event"] == "source_reconnecting" for e in daemon.log_events())
    finally:
        writer.stop.set()
        daemon.stop()
    assert reconnects == KILLS, f"{reconnects} reconnects for {KILLS} terminated walsenders"

    topic = table_topic(topic_prefix, "public", "numbered")
    reader = PartitionReader(kafka_bootstrap, topic, PARTITIONS)
    try:
        records = reader.read_all()
    finally:
        reader.close()
    copies = Counter(orjson.loads(r.key)["id"] for r in records if r.key is not None)
    expected = writer.txns * ROWS_PER_TXN
    assert expected > 0
    missing = set(range(1, expected + 1)) - copies.keys()
    assert not missing, f"{len(missing)} committed rows never reached Kafka, e.g. {min(missing)}"
    repeated = sorted(row for row, count in copies.items() if count > 1)
    assert not repeated, (
        f"{len(repeated)} of {expected} rows were published more than once"
        f" (e.g. ids {repeated[:5]}) after {KILLS} reconnects"
    )
    assert len(records) == expected
