"""kill -9 of the MySQL/MariaDB source in the middle of the binlog stream.

Checked on the real server and broker:
- nothing committed is lost: after a restart every row change is in Kafka
  (a change may arrive twice, from the same binlog transaction both times);
- the stored position never runs ahead of Kafka: whenever a `mysql/position`
  appears in the offsets topic, every change before it is already in the
  table's topic;
- a restart inside a large multi-row transaction resumes after the rows Kafka
  already had, not at the transaction's start.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import orjson

from cdc.kafka.offsets import KafkaOffsetStore
from cdc.mysql.position import BinlogPosition
from cdc.topics import table_topic
from tests.integration.conftest import mysql_connect
from tests.integration.daemon_process import (
    DaemonProcess,
    PartitionReader,
    Record,
    wait_until,
)
from tests.integration.mysql_support import (
    OffsetsFollower,
    at,
    check_never_ahead,
    master_position,
    tx_of,
    write_mysql_config,
)

TXNS = 1500
ROWS_PER_TXN = 20
KILL_AFTER_TXNS = 500
BIG_ROWS = 200_000

TABLE = (
    "CREATE TABLE numbered (id BIGINT PRIMARY KEY, txn INT NOT NULL,"
    " payload VARCHAR(64) NOT NULL, touched INT NULL)"
)
# A long linger keeps messages in the producer for a while after they were
# handed over: a source storing positions on hand-over instead of on Kafka's
# acknowledgement is caught by the follower every time.
LINGER = {"linger.ms": 200}


class Writer(threading.Thread):
    """TXNS transactions: ROWS_PER_TXN inserts, then an update of a row of the
    transaction before (so updates are row changes that must survive too)."""

    def __init__(self, dsn: str) -> None:
        super().__init__(daemon=True)
        self.dsn = dsn
        self.committed = 0
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            with mysql_connect(self.dsn) as conn, conn.cursor() as cur:
                conn.autocommit(False)
                for txn in range(TXNS):
                    first = txn * ROWS_PER_TXN + 1
                    cur.execute(
                        "INSERT INTO numbered (id, txn, payload)"
                        " SELECT seq, %s, CONCAT('payload ', seq) FROM seq_%s_to_%s",
                        (txn, first, first + ROWS_PER_TXN - 1),
                    )
                    if txn > 0:
                        cur.execute(
                            "UPDATE numbered SET touched = %s WHERE id = %s",
                            (txn, first - ROWS_PER_TXN),
                        )
                    conn.commit()
                    self.committed = txn + 1
                    time.sleep(0.003)  # spread the load over a few seconds
        except BaseException as exc:
            self.error = exc


def _row_in_tx(value: dict[str, Any]) -> int:
    """A change's index in its transaction: the inserts in id order, then the update."""
    if value["op"] == "u":
        return ROWS_PER_TXN
    return (int(value["after"]["id"]) - 1) % ROWS_PER_TXN


def _row_of_big(value: dict[str, Any]) -> int:
    return int(value["after"]["id"]) - 1  # inserted in id order


def _changes(records: list[Record]) -> dict[tuple[str, int], set[tuple[str, int]]]:
    """(op, id) -> the binlog transactions that carried it."""
    seen: dict[tuple[str, int], set[tuple[str, int]]] = {}
    for record in records:
        if record.value is None:
            continue
        value = orjson.loads(record.value)
        assert record.key is not None
        row_id = orjson.loads(record.key)["id"]
        seen.setdefault((value["op"], row_id), set()).add(tx_of(value))
    return seen


def _check_resumed(
    records: list[Record],
    killed_ends: dict[int, int],
    resumed: dict[str, Any],
    row_in_tx: Callable[[dict[str, Any]], int],
) -> int:
    """The second run sent each change at or after the position it resumed
    from exactly once, and nothing before it (so, with every change in the
    topic, the first run had sent all those before it). Returns the
    duplicates: changes both runs sent."""
    bound = (resumed["file"], resumed["pos"], resumed["skip"])
    first: set[tuple[str, int, int]] = set()
    second: list[tuple[str, int, int]] = []
    for record in records:
        if record.value is None:
            continue
        value = orjson.loads(record.value)
        event_at = (*tx_of(value), row_in_tx(value))
        if record.offset < killed_ends[record.partition]:
            first.add(event_at)
        else:
            second.append(event_at)
    assert len(second) == len(set(second)), "the second run sent a change twice"
    assert min(second) >= bound, f"the second run sent {min(second)}, before {bound}"
    assert set(second) == {e for e in first | set(second) if e >= bound}
    return sum(1 for e in first if e >= bound)


def _after_kill(reader: PartitionReader) -> dict[int, int]:
    """The topic's end offsets once the killed process's last requests landed."""
    time.sleep(0.5)
    return reader.end_offsets()


def _start(config: Path, log: Path) -> DaemonProcess:
    daemon = DaemonProcess(config, log)
    wait_until(
        lambda: any(e["event"] == "streaming_started" for e in daemon.log_events()),
        60,
        "the source to stream",
        daemon,
    )
    return daemon


def test_kill_9_mid_stream_loses_no_committed_change(
    tmp_path: Path, mysql_dsn: str, kafka_bootstrap: str, unique_name: str, topic_prefix: str
) -> None:
    database = urlsplit(mysql_dsn).path.strip("/")
    with mysql_connect(mysql_dsn) as conn, conn.cursor() as cur:
        cur.execute(TABLE)
    config = write_mysql_config(
        tmp_path / "cdc.yaml",
        unique_name,
        mysql_dsn,
        kafka_bootstrap,
        [f"{database}.numbered"],
        producer=LINGER,
    )
    topic = table_topic(topic_prefix, database, "numbered")
    KafkaOffsetStore(kafka_bootstrap, topic_prefix)  # the follower needs the topic
    follower = OffsetsFollower(kafka_bootstrap, topic_prefix, topic)
    follower.start()
    first = _start(config, tmp_path / "first.log")
    writer = Writer(mysql_dsn)
    writer.start()
    second: DaemonProcess | None = None
    try:
        wait_until(lambda: writer.committed >= KILL_AFTER_TXNS, 60, "the load", first)
        wait_until(
            lambda: sum(sum(s.ends.values()) > 0 for s in follower.stored) >= 3,
            30,
            "stored positions",
            first,
        )
        reader = PartitionReader(kafka_bootstrap, topic, 2)
        first.kill9()
        killed_at = writer.committed
        last_stored = follower.position()
        killed_ends = _after_kill(reader)
        time.sleep(0.5)  # the load goes on while the source is down
        second = _start(config, tmp_path / "second.log")
        writer.join(120)
        assert writer.error is None, writer.error
        assert not writer.is_alive()
        follower.wait_stored(master_position(mysql_dsn), 120, second)
    finally:
        if first.alive():
            first.kill9()
        if second is not None:
            second.stop()
        follower.close()
    assert killed_at < TXNS, "the load ended before the kill: nothing was in flight"
    try:
        records = reader.read_all()
    finally:
        reader.close()
    seen = _changes(records)
    inserts = {("c", i) for i in range(1, TXNS * ROWS_PER_TXN + 1)}
    updates = {("u", txn * ROWS_PER_TXN + 1 - ROWS_PER_TXN) for txn in range(1, TXNS)}
    missing = (inserts | updates) - seen.keys()
    assert not missing, f"{len(missing)} committed changes never reached Kafka: {min(missing)}"
    assert seen.keys() == inserts | updates
    # a duplicate is the same change sent again, from the same transaction
    assert all(len(txs) == 1 for txs in seen.values())
    assert second is not None
    resumed = next(e for e in second.log_events() if e["event"] == "streaming_started")
    # it resumed from the latest stored position, at least the last one seen
    assert last_stored is not None
    assert (resumed["file"], resumed["pos"], resumed["skip"]) >= at(last_stored)
    duplicates = _check_resumed(records, killed_ends, resumed, _row_in_tx)
    checked = check_never_ahead(follower.stored, records, _row_in_tx)
    assert checked >= 3, f"only {checked} stored positions covered any change"
    print(f"{len(follower.stored)} stored positions checked, {duplicates} duplicates")


def test_kill_9_inside_a_large_transaction_resumes_after_the_rows_kafka_has(
    tmp_path: Path, mysql_dsn: str, kafka_bootstrap: str, unique_name: str, topic_prefix: str
) -> None:
    database = urlsplit(mysql_dsn).path.strip("/")
    with mysql_connect(mysql_dsn) as conn, conn.cursor() as cur:
        cur.execute(TABLE)
    config = write_mysql_config(
        tmp_path / "cdc.yaml",
        unique_name,
        mysql_dsn,
        kafka_bootstrap,
        [f"{database}.numbered"],
        producer=LINGER,
    )
    topic = table_topic(topic_prefix, database, "numbered")
    KafkaOffsetStore(kafka_bootstrap, topic_prefix)
    follower = OffsetsFollower(kafka_bootstrap, topic_prefix, topic)
    follower.start()
    first = _start(config, tmp_path / "first.log")
    second: DaemonProcess | None = None
    try:
        start = master_position(mysql_dsn)
        with mysql_connect(mysql_dsn) as conn, conn.cursor() as cur:
            # one transaction, one statement: the binlog holds it as one
            # run of multi-row events that only appears at commit
            cur.execute(
                "INSERT INTO numbered (id, txn, payload)"
                f" SELECT seq, 0, CONCAT('payload ', seq) FROM seq_1_to_{BIG_ROWS}"
            )
        end = master_position(mysql_dsn)

        def inside() -> bool:
            stored = follower.position()
            # well inside, so the kill lands while the rows stream
            return stored is not None and stored.skip >= BIG_ROWS // 10

        wait_until(inside, 60, "a stored position inside the transaction", first)
        first.kill9()
        partial = follower.position()
        assert partial is not None
        reader = PartitionReader(kafka_bootstrap, topic, 2)
        killed_ends = _after_kill(reader)
        second = _start(config, tmp_path / "second.log")
        follower.wait_stored(end, 120, second)
    finally:
        if first.alive():
            first.kill9()
        if second is not None:
            second.stop()
        follower.close()
    try:
        records = reader.read_all()
    finally:
        reader.close()
    assert second is not None
    resumed = next(e for e in second.log_events() if e["event"] == "streaming_started")
    # resumed inside the transaction, at or after what the follower last saw
    assert BIG_ROWS > resumed["skip"] >= partial.skip > 0
    tx = (resumed["file"], resumed["pos"])
    assert (start.file, start.pos) <= tx < (end.file, end.pos)

    seen = _changes(records)
    assert seen.keys() == {("c", i) for i in range(1, BIG_ROWS + 1)}
    assert all(txs == {tx} for txs in seen.values())
    # the second run sent exactly the rows after the stored position: none
    # before it (nothing repeated) and none missing
    after_kill = [
        orjson.loads(r.key)["id"]
        for r in records
        if r.offset >= killed_ends[r.partition] and r.key is not None
    ]
    assert sorted(after_kill) == list(range(resumed["skip"] + 1, BIG_ROWS + 1))
    _check_resumed(records, killed_ends, resumed, _row_of_big)
    checked = check_never_ahead(follower.stored, records, _row_of_big)
    assert checked >= 1
    print(
        f"killed at {partial.skip} of {BIG_ROWS} rows stored; resumed after {resumed['skip']};"
        f" {len(follower.stored)} stored positions checked"
    )


def test_stored_position_keeps_up_with_a_slow_stream(
    tmp_path: Path, mysql_dsn: str, kafka_bootstrap: str, unique_name: str, topic_prefix: str
) -> None:
    """A trickle of commits never leaves the stream idle for the server's 1 s
    heartbeat, nor reaches a thousand items quickly: the stored position must
    still follow within about a second, so a crash replays little."""
    database = urlsplit(mysql_dsn).path.strip("/")
    with mysql_connect(mysql_dsn) as conn, conn.cursor() as cur:
        cur.execute(TABLE)
    config = write_mysql_config(
        tmp_path / "cdc.yaml", unique_name, mysql_dsn, kafka_bootstrap, [f"{database}.numbered"]
    )
    KafkaOffsetStore(kafka_bootstrap, topic_prefix)
    follower = OffsetsFollower(kafka_bootstrap, topic_prefix)
    follower.start()
    daemon = _start(config, tmp_path / "cdc.log")
    committed: list[tuple[float, BinlogPosition]] = []
    try:
        with mysql_connect(mysql_dsn) as conn, conn.cursor() as cur:
            for i in range(1, 25):
                cur.execute("INSERT INTO numbered VALUES (%s, %s, 'trickle', NULL)", (i, i))
                committed.append((time.monotonic(), master_position(mysql_dsn)))
                time.sleep(0.25)
        stored = follower.position()
        daemon.assert_alive()
    finally:
        daemon.stop()
        follower.close()
    # still mid-trickle as far as the source knows: no idle heartbeat came yet
    due = [p for t, p in committed if t <= committed[-1][0] - 2.5]
    assert stored is not None and due
    assert at(stored) >= at(due[-1]), f"stored {stored} trails the commits of 2.5 s ago"
