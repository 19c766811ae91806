"""Waiting until the sink has applied everything the source had at a given moment.

A verify that finds a difference while replication runs must tell a change still in
flight from a real difference. `SinkProgress.caught_up` reads the source's current
position, then waits in two steps, each a position comparison:

1. the source has acknowledged that position, i.e. Kafka holds every change up to it:
   PostgreSQL: the slot's `confirmed_flush_lsn` >= `pg_current_wal_lsn()` read before
   (heartbeats move it while the captured tables are idle); MariaDB: the GTID state in
   the stored position (`<prefix>.__offsets`) has every domain's sequence number of
   `@@gtid_binlog_pos`; other MySQL servers compare binlog file and position with
   `SHOW MASTER STATUS`;
2. then the sink's offsets in the target's `cdc_offsets` reach the end offsets the
   pipeline's table topics had once step 1 held: every change up to the position is
   then applied (the sink stores a batch's offsets in the batch's own transaction).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import psycopg
import pymysql
import structlog

from cdc.kafka.offsets import KafkaOffsetStore
from cdc.mysql.position import BinlogPosition, parse_gtids
from cdc.mysql.source import POSITION_KEY
from cdc.settings import PostgresSource, Settings
from sinks.replay import Replay, stored_offsets
from sinks.worker import build_applier

log = structlog.get_logger(__name__)

POLL_S = 1.0  # the MySQL source stores its position once a second; a poll reads a topic


class SinkProgress:
    def __init__(self, settings: Settings, source: Any, timeout_s: float) -> None:
        """`source` is an open connection to the source (psycopg or pymysql)."""
        self._settings = settings
        self._source = source
        self.timeout_s = timeout_s

    def caught_up(self) -> bool:
        """Whether the sink passed the source position read now, within the timeout."""
        deadline = time.monotonic() + self.timeout_s
        if isinstance(self._settings.source, PostgresSource):
            acknowledged = self._pg_acknowledged()
        else:
            acknowledged = self._mysql_acknowledged()
        if not _wait(acknowledged, deadline):
            log.warning("verify_source_not_caught_up", timeout_s=self.timeout_s)
            return False
        kafka = Replay(self._settings)
        applier = build_applier(self._settings)
        try:
            partitions = kafka.partitions()
            ends = {key: end for key, (_, end) in kafka.watermarks(partitions).items() if end}

            def applied() -> bool:
                stored = stored_offsets(applier, partitions)
                return all(stored.get(key, 0) >= end for key, end in ends.items())

            if _wait(applied, deadline):
                return True
            log.warning("verify_sink_not_caught_up", timeout_s=self.timeout_s)
            return False
        finally:
            applier.close()
            kafka.close()

    def _pg_acknowledged(self) -> Callable[[], bool]:
        assert isinstance(self._settings.source, PostgresSource)
        slot = self._settings.source.slot_name
        conn: psycopg.Connection[Any] = self._source
        (lsn,) = conn.execute("SELECT pg_current_wal_lsn()").fetchone() or (None,)

        def acknowledged() -> bool:
            row = conn.execute(
                "SELECT confirmed_flush_lsn >= %s::pg_lsn FROM pg_replication_slots"
                " WHERE slot_name = %s",
                (str(lsn), slot),
            ).fetchone()
            return bool(row and row[0])

        return acknowledged

    def _mysql_acknowledged(self) -> Callable[[], bool]:
        conn: pymysql.connections.Connection[Any] = self._source
        kafka = self._settings.kafka
        prefix = kafka.topic_prefix or self._settings.name
        with conn.cursor() as cur:
            cur.execute("SHOW VARIABLES LIKE 'gtid_binlog_pos'")
            row = cur.fetchone()
            gtids = parse_gtids(row[1]) if row else {}
            cur.execute("SHOW MASTER STATUS")
            status = cur.fetchone()
        current = BinlogPosition(status[0], int(status[1])) if status else None

        def acknowledged() -> bool:
            # read afresh each time: the store is a snapshot of the compacted topic
            stored = KafkaOffsetStore(kafka.client_config(), prefix).get(POSITION_KEY)
            if stored is None:
                return False
            position = BinlogPosition.from_json(stored)
            if gtids:
                have = parse_gtids(position.gtid)
                return all(
                    domain in have and _seq(have[domain]) >= _seq(gtid)
                    for domain, gtid in gtids.items()
                )
            return current is None or (position.file, position.pos) >= (
                current.file,
                current.pos,
            )

        return acknowledged


def _seq(gtid: str) -> int:
    return int(gtid.rsplit("-", 1)[1])


def _wait(predicate: Callable[[], bool], deadline: float) -> bool:
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(POLL_S)
