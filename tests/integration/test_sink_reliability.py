"""The PostgreSQL sink under kill -9 and bad input: the target ends equal to the
source, no change is applied twice, and nothing it cannot read stops it."""

from __future__ import annotations

import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
import psycopg
from confluent_kafka import Producer

from tests.integration.daemon_process import PartitionReader, current_lsn, wait_confirmed
from tests.integration.pipeline import pg_pipeline, running, wait_until
from tests.integration.sink_support import (
    QUICK_GROUP,
    Positions,
    SinkProcess,
    end_positions,
    headers_of,
    key_of,
    read_topic,
    stored_positions,
    table_digest,
    wait_applied,
    with_kafka_consumer,
)

PARTITIONS = 2  # pg_pipeline's
ITEMS = "CREATE TABLE items (id int PRIMARY KEY, counter int NOT NULL, payload text)"
# Every row write the sink makes lands in `applied`, including COPY and
# upserts: an ALWAYS trigger fires under session_replication_role = replica.
# A batch applied twice would leave an (id, counter) pair twice.
AUDIT = """
CREATE TABLE applied (id int NOT NULL, counter int NOT NULL);
CREATE FUNCTION note_applied() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN INSERT INTO applied VALUES (NEW.id, NEW.counter); RETURN NULL; END $$;
CREATE TRIGGER note AFTER INSERT OR UPDATE ON items FOR EACH ROW EXECUTE FUNCTION note_applied();
ALTER TABLE items ENABLE ALWAYS TRIGGER note;
"""
# Each round inserts ROWS rows and updates or deletes some of the previous
# round's: ~75k events, and every batch holds the last change of some rows, so
# a batch lost to a crash would leave the target different from the source.
ROWS = 5_000
ROUNDS = 10


class PositionWatch:
    """Samples the target's cdc_offsets until stopped; records any partition going back."""

    def __init__(self, dsn: str, group: str) -> None:
        self.backwards: list[str] = []
        self.samples = 0
        self._dsn, self._group = dsn, group
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        last: Positions = {}
        with psycopg.connect(self._dsn, autocommit=True) as conn:
            while not self._stop.is_set():
                now = stored_positions(conn, self._group)
                self.samples += 1
                for key, offset in now.items():
                    if offset < last.get(key, 0):
                        self.backwards.append(f"{key}: {last[key]} -> {offset}")
                for key in last.keys() - now.keys():
                    self.backwards.append(f"{key}: {last[key]} -> gone")
                last = now
                time.sleep(0.01)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)


def _slot_active(conn: psycopg.Connection[Any], slot: str) -> bool:
    row = conn.execute(
        "SELECT active FROM pg_replication_slots WHERE slot_name = %s", (slot,)
    ).fetchone()
    return bool(row and row[0])


def _writing_xid(conn: psycopg.Connection[Any]) -> int | None:
    """The full transaction id of a target session that is inside a transaction and
    has written (the sink's, mid-batch), or None."""
    row = conn.execute(
        "SELECT (pg_current_xact_id()::text::bigint >> 32 << 32) | backend_xid::text::bigint"
        " FROM pg_stat_activity WHERE datname = current_database()"
        " AND backend_xid IS NOT NULL AND pid <> pg_backend_pid()"
    ).fetchone()
    return None if row is None else int(row[0])


def _status_after_kill(conn: psycopg.Connection[Any], xid: int) -> str:
    """The killed transaction's fate, once its backend has noticed the client is gone."""
    deadline = time.monotonic() + 30
    while True:
        row = conn.execute("SELECT pg_xact_status(%s::text::xid8)", (str(xid),)).fetchone()
        assert row is not None
        if row[0] != "in progress" or time.monotonic() > deadline:
            return str(row[0])
        time.sleep(0.05)


def _kill_mid_batch(sink: SinkProcess, conn: psycopg.Connection[Any], group: str, at: int) -> str:
    """Once `at` offsets are committed, kill -9 the sink while a batch transaction
    is writing; that transaction's status afterwards ("aborted" if we hit it)."""
    deadline = time.monotonic() + 120
    while sum(stored_positions(conn, group).values()) < at:
        sink.assert_alive()
        assert time.monotonic() < deadline, f"the sink applied less than {at} messages in 120s"
        time.sleep(0.02)
    while (xid := _writing_xid(conn)) is None:
        sink.assert_alive()
        assert time.monotonic() < deadline, "never caught the sink inside a batch"
    sink.kill9()
    return _status_after_kill(conn, xid)


def test_kill_9_mid_batch_loses_nothing_and_applies_nothing_twice(
    tmp_path: Path, pg_dsn: str, pg_target_dsn: str, kafka_bootstrap: str, topic_prefix: str
) -> None:
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute(ITEMS)
    with psycopg.connect(pg_target_dsn, autocommit=True) as conn:
        conn.execute(ITEMS)
        conn.execute(AUDIT)
    settings = pg_pipeline(
        tmp_path,
        topic_prefix,
        pg_dsn,
        kafka_bootstrap,
        ["public.items"],
        target={"type": "postgres", "dsn": pg_target_dsn},
        heartbeat_interval_s=1,
    )
    config = tmp_path / f"{topic_prefix}.yaml"
    settings = with_kafka_consumer(config, QUICK_GROUP)
    group, topic = settings.consumer_group, f"{topic_prefix}.public.items"

    # The backlog: rounds of inserts, updates and deletes (one transaction each).
    with running(settings, "source"), psycopg.connect(pg_dsn, autocommit=True) as conn:
        # streaming, so that every change below is its own event (not folded into the snapshot)
        assert wait_until(lambda: _slot_active(conn, topic_prefix), timeout=60)
        for n in range(ROUNDS):
            new, old = (n * ROWS, (n + 1) * ROWS), ((n - 1) * ROWS, n * ROWS)
            conn.execute(
                "INSERT INTO items SELECT i, 0, md5(i::text)"
                " FROM generate_series(%s::int, %s::int) i",
                (new[0] + 1, new[1]),
            )
            conn.execute(
                "UPDATE items SET counter = counter + 1, payload = md5(payload)"
                " WHERE id > %s AND id <= %s AND id %% 2 = 0",
                old,
            )
            conn.execute("DELETE FROM items WHERE id > %s AND id <= %s AND id %% 97 = 0", old)
        wait_confirmed(pg_dsn, topic_prefix, current_lsn(conn), 120)
    ends = end_positions(kafka_bootstrap, [topic], PARTITIONS)
    total = sum(ends.values())
    assert total >= ROWS * ROUNDS * 1.4, ends

    watch = PositionWatch(pg_target_dsn, group)
    statuses = []
    try:
        with psycopg.connect(pg_target_dsn, autocommit=True) as conn:
            for n, fraction in enumerate((0.2, 0.5)):
                sink = SinkProcess(config, tmp_path / f"sink{n}.log")
                try:
                    statuses.append(_kill_mid_batch(sink, conn, group, int(total * fraction)))
                finally:
                    sink.stop()
        last = SinkProcess(config, tmp_path / "sink-last.log")
        try:
            wait_applied(pg_target_dsn, group, ends, timeout=180)
            last.assert_alive()
        finally:
            last.stop()
    finally:
        watch.stop()

    assert "aborted" in statuses, f"no kill landed inside a batch transaction: {statuses}"
    assert table_digest(pg_target_dsn, "items") == table_digest(pg_dsn, "items")
    with psycopg.connect(pg_target_dsn) as conn:
        assert stored_positions(conn, group) == {k: v for k, v in ends.items() if v > 0}
        applied = Counter(conn.execute("SELECT id, counter FROM applied").fetchall())
    assert watch.samples > 10 and not watch.backwards, watch.backwards
    # Every (id, counter) the target ever wrote, at most as often as Kafka holds it.
    reader = PartitionReader(kafka_bootstrap, topic, PARTITIONS)
    try:
        sent = Counter(
            (after["id"], after["counter"])
            for record in reader.iter_to({p: end for (_, p), end in ends.items()})
            if record.value is not None and (after := orjson.loads(record.value)["after"])
        )
    finally:
        reader.close()
    twice = {pair: n for pair, n in applied.items() if n > sent[pair]}
    assert not twice, f"applied more often than sent: {dict(list(twice.items())[:10])}"
    assert sum(applied.values()) >= ROWS * ROUNDS


def _delivered(
    producer: Producer, topic: str, items: list[dict[str, Any]]
) -> list[tuple[int, int]]:
    """Produce the raw messages; their (partition, offset) once Kafka has them."""
    positions: list[tuple[int, int]] = []

    def done(err: Any, msg: Any) -> None:
        assert err is None, err
        positions.append((msg.partition(), msg.offset()))

    for item in items:
        producer.produce(topic, on_delivery=done, **item)
        producer.flush(30)
    return positions


def test_poison_messages_are_dead_lettered_and_later_events_apply(
    tmp_path: Path, pg_dsn: str, pg_target_dsn: str, kafka_bootstrap: str, topic_prefix: str
) -> None:
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE t (id int PRIMARY KEY, v int, note text)")
        conn.execute("INSERT INTO t SELECT i, i, 'n' || i FROM generate_series(1, 20) i")
    settings = pg_pipeline(
        tmp_path,
        topic_prefix,
        pg_dsn,
        kafka_bootstrap,
        ["public.t"],
        target={"type": "postgres", "dsn": pg_target_dsn, "create_tables": True},
    )
    topic, dlq = f"{topic_prefix}.public.t", f"{topic_prefix}.__dlq"

    def equal() -> bool:
        try:
            return table_digest(pg_target_dsn, "t") == table_digest(pg_dsn, "t")
        except psycopg.errors.UndefinedTable:
            return False

    with running(settings, "all") as daemon:
        assert wait_until(equal, timeout=60)
        fingerprint = headers_of(read_topic(kafka_bootstrap, topic, 1)[0])["cdc.schema"]
        schema_header = [("cdc.schema", fingerprint.encode())]
        poison = [
            {"key": b'{"id": 1}', "value": b"{not json", "partition": 0},
            {
                "key": b'{"id": 2}',
                "value": b"not json either",
                "headers": schema_header,
                "partition": 1,
            },
            {  # JSON, but not the shape of a change event
                "key": b'{"id": 3}',
                "value": b'{"op": "c", "before": null, "after": 5, "source": {}, "ts_ms": 0}',
                "headers": schema_header,
                "partition": 0,
            },
        ]
        producer = Producer({"bootstrap.servers": kafka_bootstrap})
        positions = _delivered(producer, topic, poison)
        with psycopg.connect(pg_dsn, autocommit=True) as conn:
            conn.execute("INSERT INTO t SELECT i, i, 'later' FROM generate_series(21, 60) i")
            conn.execute("UPDATE t SET v = v + 100 WHERE id <= 10")
            conn.execute("DELETE FROM t WHERE id BETWEEN 15 AND 17")
        assert wait_until(equal, timeout=60), "changes after the poison messages were not applied"
        assert daemon.is_alive()

    dead = read_topic(kafka_bootstrap, dlq, len(poison) + 1, timeout=3)
    assert len(dead) == len(poison), [m.value() for m in dead]
    by_position = {
        (int(h["cdc.partition"]), int(h["cdc.offset"])): (m, h)
        for m in dead
        if (h := headers_of(m))
    }
    assert set(by_position) == set(positions)
    errors = []
    for item, position in zip(poison, positions, strict=True):
        msg, headers = by_position[position]
        assert msg.value() == item["value"] and msg.key() == item["key"]
        assert headers["cdc.reason"] == "decode" and headers["cdc.topic"] == topic
        errors.append(headers["cdc.error"])
    assert "no cdc.schema header" in errors[0]
    assert errors[1].startswith("not a change event")
    assert errors[2].startswith("not a change event")


def test_values_the_target_refuses_are_dead_lettered_one_by_one(
    tmp_path: Path, pg_dsn: str, pg_target_dsn: str, kafka_bootstrap: str, topic_prefix: str
) -> None:
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE t (id int PRIMARY KEY, v int NOT NULL)")
        conn.execute("INSERT INTO t SELECT i, i FROM generate_series(1, 50) i")
    with psycopg.connect(pg_target_dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE t (id int PRIMARY KEY, v int NOT NULL CHECK (v < 1000))")
    settings = pg_pipeline(
        tmp_path,
        topic_prefix,
        pg_dsn,
        kafka_bootstrap,
        ["public.t"],
        target={"type": "postgres", "dsn": pg_target_dsn},
        heartbeat_interval_s=1,
    )

    def target_rows() -> dict[int, int]:
        with psycopg.connect(pg_target_dsn) as conn:
            return dict(conn.execute("SELECT id, v FROM t").fetchall())

    with running(settings, "all"):
        assert wait_until(lambda: len(target_rows()) == 50, timeout=60)
    # While the sink is down: one transaction of updates, one of them refused by the target.
    with psycopg.connect(pg_dsn) as conn:
        conn.execute("UPDATE t SET v = v + 1 WHERE id <= 30")
        conn.execute("UPDATE t SET v = 5000 WHERE id = 7")
    with running(settings, "source"), psycopg.connect(pg_dsn, autocommit=True) as conn:
        wait_confirmed(pg_dsn, topic_prefix, current_lsn(conn), 60)
    # A fresh sink: its first batch (updates, staged) fails, then goes change by change.
    expected = {i: (i + 1 if i <= 30 else i) for i in range(1, 51)}
    with running(settings, "all"):
        assert wait_until(lambda: target_rows() == expected, timeout=60), target_rows()
        with psycopg.connect(pg_dsn, autocommit=True) as conn:
            conn.execute("INSERT INTO t SELECT i, i FROM generate_series(51, 60) i")
            conn.execute("UPDATE t SET v = 1 WHERE id = 1")
        expected |= {i: i for i in range(51, 61)} | {1: 1}
        assert wait_until(lambda: target_rows() == expected, timeout=60), target_rows()

    dead = read_topic(kafka_bootstrap, f"{topic_prefix}.__dlq", 2, timeout=3)
    assert len(dead) == 1
    headers = headers_of(dead[0])
    assert key_of(dead[0]) == {"id": 7}
    assert orjson.loads(dead[0].value() or b"")["after"] == {"id": 7, "v": 5000}
    assert headers["cdc.reason"] == "apply"
    assert "check constraint" in headers["cdc.error"]
