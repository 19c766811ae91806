"""The binlog the stored position points into was purged while the source was
down: the source stops with the fix in its log line and publishes nothing.

The purge is server-wide: the test records its position, flushes the binlog
twice and purges up to the newest file, so only files older than the current
one go (they hold nothing a later test starts from).
"""

from __future__ import annotations

import time
from pathlib import Path
from urllib.parse import urlsplit

import orjson
import pymysql

from cdc.kafka.offsets import KafkaOffsetStore
from cdc.mysql.position import BinlogPosition
from cdc.mysql.source import POSITION_KEY
from cdc.topics import table_topic
from tests.integration.conftest import mysql_connect
from tests.integration.daemon_process import DaemonProcess, PartitionReader, wait_until
from tests.integration.mysql_support import OffsetsFollower, master_position, write_mysql_config

INSERT = "INSERT INTO kept SELECT seq, %s FROM seq_{lo}_to_{hi}"


def _insert(dsn: str, batch: str, lo: int, hi: int) -> None:
    with mysql_connect(dsn) as conn, conn.cursor() as cur:
        cur.execute(INSERT.format(lo=lo, hi=hi), (batch,))


def _binlogs(cur: pymysql.cursors.Cursor) -> list[str]:
    cur.execute("SHOW BINARY LOGS")
    return [str(row[0]) for row in cur.fetchall()]


def _purge_up_to_a_new_file(dsn: str, stored: BinlogPosition) -> str:
    """Flush twice and purge to the newest file: `stored.file` and the one
    after it are gone. Returns the newest file."""
    with mysql_connect(dsn) as conn, conn.cursor() as cur:
        cur.execute("FLUSH BINARY LOGS")
        cur.execute("FLUSH BINARY LOGS")
        cur.execute("SHOW MASTER STATUS")
        newest = str(cur.fetchone()[0])
        assert newest > stored.file
        deadline = time.monotonic() + 60
        # A replica still reading an old file (another client of the shared
        # server) keeps it: try again until it let go.
        while stored.file in _binlogs(cur):
            assert time.monotonic() < deadline, f"{stored.file} is still in use after 60s"
            cur.execute(f"PURGE BINARY LOGS TO '{newest}'")
            time.sleep(0.5)
    return newest


def test_purged_binlog_stops_the_source_with_the_fix_and_publishes_nothing(
    tmp_path: Path, mysql_dsn: str, kafka_bootstrap: str, unique_name: str, topic_prefix: str
) -> None:
    database = urlsplit(mysql_dsn).path.strip("/")
    with mysql_connect(mysql_dsn) as conn, conn.cursor() as cur:
        cur.execute("CREATE TABLE kept (id INT PRIMARY KEY, batch VARCHAR(8) NOT NULL)")
    _insert(mysql_dsn, "snapshot", 1, 10)
    config = write_mysql_config(
        tmp_path / "cdc.yaml", unique_name, mysql_dsn, kafka_bootstrap, [f"{database}.kept"]
    )
    topic = table_topic(topic_prefix, database, "kept")
    KafkaOffsetStore(kafka_bootstrap, topic_prefix)
    follower = OffsetsFollower(kafka_bootstrap, topic_prefix)
    follower.start()
    first = DaemonProcess(config, tmp_path / "first.log")
    try:
        wait_until(
            lambda: any(e["event"] == "streaming_started" for e in first.log_events()),
            60,
            "the source to stream",
            first,
        )
        _insert(mysql_dsn, "streamed", 11, 20)
        follower.wait_stored(master_position(mysql_dsn), 60, first)
        assert first.stop() == 0
    finally:
        if first.alive():
            first.kill9()
        follower.close()
    stored = follower.position()
    assert stored is not None

    # while the source is down: changes it will never be able to read, then
    # their binlog goes, then changes in the newest file
    _insert(mysql_dsn, "lost", 21, 30)
    newest = _purge_up_to_a_new_file(mysql_dsn, stored)
    _insert(mysql_dsn, "later", 31, 40)
    assert master_position(mysql_dsn).file == newest

    reader = PartitionReader(kafka_bootstrap, topic, 2)
    before = reader.end_offsets()
    second = DaemonProcess(config, tmp_path / "second.log")
    try:
        second.proc.wait(120)
    finally:
        code = second.stop()
    assert code == 1, second.log_tail()
    (stopped,) = [e for e in second.log_events() if e["event"] == "stopped"]
    assert stopped["level"] == "error"
    assert stored.file in stopped["error"] and "purged" in stopped["error"]
    assert "snapshot" in stopped["fix"] and "__offsets" in stopped["fix"]

    # nothing was published, and the stored position stayed where it was
    assert reader.end_offsets() == before
    try:
        records = reader.read_all()
    finally:
        reader.close()
    batches = {
        orjson.loads(r.key or b"")["id"]: orjson.loads(r.value)["after"]["batch"]
        for r in records
        if r.value is not None
    }
    assert batches == {i: "snapshot" if i <= 10 else "streamed" for i in range(1, 21)}
    assert KafkaOffsetStore(kafka_bootstrap, topic_prefix).get(POSITION_KEY) == stored.to_json()
