"""How far each stage of a pipeline got: the source's position, what its table
topics hold, and what the sink applied (the target's `cdc_offsets`); and
`wait_applied`, the wait until the sink applied everything the source had at
a marked moment, which the cut-over, the rollback and verify share.

A point is marked on the source: on PostgreSQL a transactional logical message
(its commit is the last thing a fenced database writes, and the source's slot
moves past it only once Kafka has every change before it); on MySQL/MariaDB
the binlog position, compared with the position the source stored in its
offsets topic once Kafka had it all. On MariaDB the comparison is by GTID
(every replication domain's sequence number): a binlog rotation moves the file
and position with no transaction the source could acknowledge, the GTIDs not.

The sink stores a batch's offsets in the batch's own target transaction, so
once its offsets reach the topics' end offsets read after the source published
the marker, every change up to the marker is applied.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field
from datetime import datetime

import psycopg.errors
import pymysql
from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient

from cdc.kafka.offsets import OffsetsReader
from cdc.migrate.connections import is_postgres, mysql_connect, pg_connect
from cdc.mysql.position import BinlogPosition, parse_gtids
from cdc.mysql.setup import current_position
from cdc.mysql.source import POSITION_KEY
from cdc.settings import PostgresSource, Settings
from cdc.topics import dead_letter_topic, table_topics_pattern

FENCE_PREFIX = "cdc_fence"
POLL_S = 0.2

Partition = tuple[str, int]
_MISSING_TABLE = (psycopg.errors.UndefinedTable, pymysql.err.ProgrammingError)


@dataclass(frozen=True)
class Marker:
    """A source position: a PostgreSQL LSN, or a MySQL binlog file and position
    (on MariaDB with its GTID state, `@@gtid_binlog_pos`)."""

    lsn: int = 0
    file: str = ""
    pos: int = 0
    gtid: str = ""

    def __str__(self) -> str:
        if self.file:
            return f"{self.file}:{self.pos}"
        return f"{self.lsn >> 32:X}/{self.lsn & 0xFFFFFFFF:X}"


def mark_source(settings: Settings) -> Marker:
    """The source's current position; on PostgreSQL a marker written there."""
    if is_postgres(settings.source):
        with pg_connect(settings.source.dsn) as conn:
            row = conn.execute(
                "SELECT (pg_logical_emit_message(true, %s, %s) - '0/0')::bigint",
                (FENCE_PREFIX, settings.name),
            ).fetchone()
            assert row is not None
            return Marker(lsn=int(row[0]))
    with mysql_connect(settings.source.dsn) as conn, conn.cursor() as cur:
        position = current_position(cur)
        return Marker(file=position.file, pos=position.pos, gtid=position.gtid)


class Published:
    """How far the source has put everything into Kafka, read again at each call
    (None: it never ran). On MySQL/MariaDB it follows the offsets topic with one
    consumer, kept until `close`, so a wait can ask every few hundred milliseconds."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        kafka = settings.kafka
        self._offsets = (
            None
            if isinstance(settings.source, PostgresSource)
            else OffsetsReader(kafka.client_config(), kafka.topic_prefix)
        )

    def __enter__(self) -> Published:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        if self._offsets is not None:
            self._offsets.close()

    def __call__(self) -> Marker | None:
        source = self._settings.source
        if self._offsets is None:
            assert isinstance(source, PostgresSource)
            with pg_connect(source.dsn) as conn:
                row = conn.execute(
                    "SELECT (confirmed_flush_lsn - '0/0')::bigint FROM pg_replication_slots"
                    " WHERE slot_name = %s",
                    (source.slot_name,),
                ).fetchone()
                return Marker(lsn=int(row[0])) if row and row[0] is not None else None
        stored = self._offsets.read().get(POSITION_KEY)
        if stored is None:
            return None
        position = BinlogPosition.from_json(stored)
        return Marker(file=position.file, pos=position.pos, gtid=position.gtid)


def published(settings: Settings) -> Marker | None:
    """How far the source has put everything into Kafka, read once."""
    with Published(settings) as read:
        return read()


def reached(position: Marker | None, marker: Marker) -> bool:
    if position is None:
        return False
    # MySQL's own GTID sets ("uuid:1-5") parse to nothing: file and position compare
    wanted = parse_gtids(marker.gtid)
    if wanted:
        have = parse_gtids(position.gtid)
        return all(
            domain in have and _sequence(have[domain]) >= _sequence(gtid)
            for domain, gtid in wanted.items()
        )
    if marker.file:
        return (_binlog_index(position.file), position.pos) >= (
            _binlog_index(marker.file),
            marker.pos,
        )
    return position.lsn > marker.lsn  # the slot stops at commit ends, after the marker


def _sequence(gtid: str) -> int:
    return int(gtid.rsplit("-", 1)[1])


def _binlog_index(name: str) -> int:
    match = re.search(r"(\d+)$", name)
    return int(match.group(1)) if match else 0


class KafkaView:
    """The pipeline's topics as Kafka holds them."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        connection = settings.kafka.client_config()
        self._admin = AdminClient(connection)
        self._consumer = Consumer(
            {
                **connection,
                "group.id": f"cdc-inspect-{uuid.uuid4().hex}",
                "enable.auto.commit": False,
            }
        )

    def close(self) -> None:
        self._consumer.close()

    def table_topics(self) -> list[str]:
        pattern = re.compile(table_topics_pattern(self._settings.kafka.topic_prefix))
        topics = self._admin.list_topics(timeout=30).topics
        return sorted(name for name in topics if pattern.match(name))

    def ends(self) -> dict[Partition, tuple[int, int]]:
        """(low, high) watermark of every partition of the table topics."""
        metadata = self._admin.list_topics(timeout=30).topics
        found = {}
        for topic in self.table_topics():
            for partition in metadata[topic].partitions:
                marks = self._consumer.get_watermark_offsets(
                    TopicPartition(topic, partition), timeout=30
                )
                found[(topic, partition)] = (int(marks[0]), int(marks[1]))
        return found

    def timestamp_at(self, topic: str, partition: int, offset: int) -> float | None:
        """Kafka's timestamp (seconds) of the message at `offset`."""
        self._consumer.assign([TopicPartition(topic, partition, offset)])
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            msg = self._consumer.poll(1)
            if msg is None:
                continue
            error = msg.error()
            if error is None:
                return msg.timestamp()[1] / 1000
            if error.code() != KafkaError._PARTITION_EOF:
                raise KafkaException(error)
        return None

    def dead_letters(self, since: datetime | None) -> int:
        """Messages on `<prefix>.__dlq` (with a Kafka timestamp at or after `since`)."""
        topic = dead_letter_topic(self._settings.kafka.topic_prefix)
        metadata = self._admin.list_topics(timeout=30).topics
        if topic not in metadata:
            return 0
        count = 0
        for partition in metadata[topic].partitions:
            low, high = self._consumer.get_watermark_offsets(
                TopicPartition(topic, partition), timeout=30
            )
            start = low
            if since is not None:
                wanted = TopicPartition(topic, partition, int(since.timestamp() * 1000))
                found = self._consumer.offsets_for_times([wanted], timeout=30)[0].offset
                start = high if found < 0 else max(found, low)
            count += max(0, high - start)
        return count


def applied(settings: Settings) -> dict[Partition, int]:
    """The sink's next offset per partition, from the target's cdc_offsets."""
    target = settings.target
    assert target is not None
    group = settings.consumer_group
    query = "SELECT topic, kafka_partition, next_offset FROM {} WHERE consumer_group = %s"
    try:
        if is_postgres(target):
            with pg_connect(target.dsn) as conn:
                rows = conn.execute(query.format("public.cdc_offsets"), (group,)).fetchall()
                return {(t, int(p)): int(o) for t, p, o in rows}
        with mysql_connect(target.dsn) as conn, conn.cursor() as cur:
            cur.execute(query.format("cdc_offsets"), (group,))
            return {
                (r["topic"], int(r["kafka_partition"])): int(r["next_offset"])
                for r in cur.fetchall()
            }
    except _MISSING_TABLE:
        return {}  # no sink has run yet


def behind(
    ends: dict[Partition, tuple[int, int]], done: dict[Partition, int]
) -> dict[Partition, int]:
    """Messages each partition's sink has still to apply (partitions with none left out)."""
    left = {}
    for key, (low, high) in ends.items():
        count = high - max(done.get(key, low), low)
        if count > 0:
            left[key] = count
    return left


@dataclass(frozen=True)
class Applied:
    """What `wait_applied` found when it returned."""

    marker: Marker
    published: bool  # the source put every change up to the marker into Kafka
    ends: dict[Partition, tuple[int, int]] = field(default_factory=dict)
    left: dict[Partition, int] = field(default_factory=dict)  # messages the sink had still

    @property
    def done(self) -> bool:
        return self.published and not self.left


def wait_applied(
    settings: Settings,
    marker: Marker,
    timeout_s: float,
    on_published: Callable[[], None] = lambda: None,
    source: Published | None = None,
) -> Applied:
    """Wait until the source published past `marker` (`mark_source`), then until the
    sink applied every message its table topics then held; gives up after `timeout_s`.
    `on_published` is called between the two waits. `source`: a reader the caller
    keeps across waits (verify waits once per round); else one for this wait."""
    deadline = time.monotonic() + timeout_s
    with nullcontext(source) if source is not None else Published(settings) as read:
        while not reached(read(), marker):
            if time.monotonic() > deadline:
                return Applied(marker, published=False)
            time.sleep(POLL_S)
    view = KafkaView(settings)
    try:
        ends = view.ends()
    finally:
        view.close()
    on_published()
    while (left := behind(ends, applied(settings))) and time.monotonic() <= deadline:
        time.sleep(POLL_S)
    return Applied(marker, True, ends, left)


@dataclass(frozen=True)
class SourceLag:
    streaming: bool  # PostgreSQL: the slot is in use; MySQL: a position is stored
    seconds: float | None  # PostgreSQL: the slot's flush lag
    bytes: int | None  # changes not yet in Kafka
    retained_bytes: int | None  # PG: WAL the slot holds; MySQL: binlogs from the stored file
    position: Marker | None = None  # what the source acknowledged; None: no position yet


def source_lag(settings: Settings) -> SourceLag:
    if isinstance(settings.source, PostgresSource):
        with pg_connect(settings.source.dsn) as conn:
            row = conn.execute(
                "SELECT s.active, (s.confirmed_flush_lsn - '0/0')::bigint,"
                " (pg_current_wal_lsn() - s.confirmed_flush_lsn)::bigint,"
                " (pg_current_wal_lsn() - s.restart_lsn)::bigint,"
                " extract(epoch FROM r.flush_lag)::float8"
                " FROM pg_replication_slots s"
                " LEFT JOIN pg_stat_replication r ON r.pid = s.active_pid"
                " WHERE s.slot_name = %s",
                (settings.source.slot_name,),
            ).fetchone()
        if row is None:
            return SourceLag(False, None, None, None)
        active, flushed, lag, retained, seconds = row
        position = None if flushed is None else Marker(lsn=int(flushed))
        return SourceLag(bool(active), float(seconds or 0.0), lag, retained, position)
    stored = published(settings)
    if stored is None:
        return SourceLag(False, None, None, None)
    with mysql_connect(settings.source.dsn) as conn, conn.cursor() as cur:
        now = current_position(cur)
        cur.execute("SHOW BINARY LOGS")
        logs = [(row["Log_name"], int(row["File_size"])) for row in cur.fetchall()]
    lag = None
    if now.file == stored.file:
        lag = max(0, now.pos - stored.pos)
    index = _binlog_index(stored.file)
    retained = sum(size for name, size in logs if _binlog_index(name) >= index)
    return SourceLag(True, None, lag, retained, stored)
