"""What the MySQL/MariaDB crash, DDL, purge and snapshot tests share: pipeline
files for `cdc run`, binlog positions, and a follower of the offsets topic."""

from __future__ import annotations

import bisect
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pymysql
import yaml
from confluent_kafka import TopicPartition

from cdc.mysql.position import BinlogPosition
from cdc.mysql.source import COMPLETE_KEY, POSITION_KEY
from cdc.topics import offsets_topic
from tests.integration.conftest import mysql_connect
from tests.integration.daemon_process import (
    PARTITIONS,
    DaemonProcess,
    Record,
    end_offsets,
    kafka_consumer,
    wait_until,
)


def write_mysql_config(
    path: Path,
    name: str,
    mysql_dsn: str,
    bootstrap: str,
    tables: list[str],
    *,
    producer: dict[str, Any] | None = None,
    snapshot: dict[str, Any] | None = None,
    topic_prefix: str | None = None,
) -> Path:
    """A pipeline file for `cdc run` on the test's database and topic prefix."""
    kafka: dict[str, Any] = {
        "bootstrap_servers": bootstrap,
        "partitions": PARTITIONS,
        "producer": producer or {},
    }
    if topic_prefix is not None:
        kafka["topic_prefix"] = topic_prefix
    config = {
        "name": name,
        "source": {"type": "mysql", "dsn": mysql_dsn, "tables": tables},
        "kafka": kafka,
        "metrics": {"listen": "127.0.0.1:0"},
        "snapshot": {"chunk_rows": 1000, **(snapshot or {})},
    }
    path.write_text(yaml.safe_dump(config))
    return path


def master_position(dsn: str) -> BinlogPosition:
    """The end of the last transaction in the binlog (a transaction boundary)."""
    with mysql_connect(dsn) as conn, conn.cursor(pymysql.cursors.DictCursor) as cur:
        cur.execute("SHOW MASTER STATUS")
        row = cur.fetchone()
        assert row is not None, "the server has no binary log"
        cur.execute("SELECT @@gtid_binlog_pos AS g")
        gtid = cur.fetchone()["g"]
    return BinlogPosition(row["File"], int(row["Position"]), gtid or "")


def at(position: BinlogPosition) -> tuple[str, int, int]:
    """Binlog order: names are zero-padded, so (file, pos, skip) tuples sort like the log."""
    return position.file, position.pos, position.skip


def tx_of(value: dict[str, Any]) -> tuple[str, int]:
    """The binlog transaction an event belongs to: the position it started at."""
    source = value["source"]
    return str(source["file"]), int(source["pos"])


@dataclass(frozen=True, slots=True)
class Stored:
    """A `mysql/position` the source stored, and the table topic's high
    watermarks read right after it appeared in the offsets topic."""

    position: BinlogPosition
    ends: dict[int, int]


class OffsetsFollower(threading.Thread):
    """Follows `<prefix>.__offsets` as the source writes it.

    The source stores a position only after Kafka acknowledged everything
    before it (acks=all: below the high watermark), so the high watermarks
    read right after a position appears must cover every event before it.
    """

    def __init__(self, bootstrap: str, prefix: str, table_topic: str | None = None) -> None:
        super().__init__(daemon=True)
        self.table_topic = table_topic
        self.values: dict[str, Any] = {}
        self.stored: list[Stored] = []
        self.error: BaseException | None = None
        self._halt = threading.Event()
        self._lock = threading.Lock()
        self._offsets = kafka_consumer(bootstrap)
        self._offsets.assign([TopicPartition(offsets_topic(prefix), 0, 0)])
        self._ends = kafka_consumer(bootstrap)

    def run(self) -> None:
        try:
            while not self._halt.is_set():
                msg = self._offsets.poll(0.05)
                if msg is None or msg.error() is not None:
                    continue
                key = (msg.key() or b"").decode()
                raw = msg.value()
                value = None if raw is None else orjson.loads(raw)
                sample = None
                if key == POSITION_KEY and value is not None and self.table_topic is not None:
                    ends = self._table_ends()
                    if ends is not None:
                        sample = Stored(BinlogPosition.from_json(value), ends)
                with self._lock:
                    self.values[key] = value
                    if sample is not None:
                        self.stored.append(sample)
        except BaseException as exc:
            self.error = exc
        finally:
            self._offsets.close()
            self._ends.close()

    def _table_ends(self) -> dict[int, int] | None:
        assert self.table_topic is not None
        try:
            return end_offsets(self._ends, self.table_topic, PARTITIONS)
        except Exception:  # the topic does not exist yet: no event was published
            return None

    def get(self, key: str) -> Any:
        with self._lock:
            return self.values.get(key)

    def position(self) -> BinlogPosition | None:
        value = self.get(POSITION_KEY)
        return None if value is None else BinlogPosition.from_json(value)

    def snapshot_complete(self) -> bool:
        return self.get(COMPLETE_KEY) is not None

    def wait_stored(
        self, target: BinlogPosition, timeout: float, daemon: DaemonProcess | None = None
    ) -> None:
        """Until the stored position reaches `target` (a transaction boundary):
        everything committed before it is then in Kafka."""

        def reached() -> bool:
            stored = self.position()
            return stored is not None and at(stored) >= at(target)

        wait_until(reached, timeout, f"a stored position at {at(target)}", daemon)

    def close(self) -> None:
        self._halt.set()
        self.join(30)
        if self.error is not None:
            raise self.error


def check_never_ahead(
    stored: list[Stored],
    records: list[Record],
    row_in_tx: Callable[[dict[str, Any]], int],
) -> int:
    """Every stored position was covered by Kafka when it appeared: the first
    copy of each event before it (an earlier transaction, or one of the first
    `skip` rows of its own) sat below the high watermarks read right after.
    Returns how many stored positions covered any event."""
    firsts: dict[tuple[str, int, int], tuple[int, int]] = {}  # (tx, row) -> partition, offset
    for record in records:
        if record.value is None:
            continue
        value = orjson.loads(record.value)
        file, pos = tx_of(value)
        firsts.setdefault((file, pos, row_in_tx(value)), (record.partition, record.offset))
    ordered = sorted(firsts.items())
    keys = [event_at for event_at, _ in ordered]
    # highest[p][i]: the highest offset in partition p among the i first events
    highest = {p: [-1] for p in range(PARTITIONS)}
    for _, (partition, offset) in ordered:
        for p, series in highest.items():
            series.append(max(series[-1], offset) if p == partition else series[-1])
    checked = 0
    for sample in stored:
        covered = bisect.bisect_left(keys, at(sample.position))
        for partition, series in highest.items():
            assert series[covered] < sample.ends[partition], (
                f"position {at(sample.position)} was stored while partition {partition}"
                f" held {sample.ends[partition]} messages; it needed offset {series[covered]}"
            )
        checked += covered > 0
    return checked


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.1)
