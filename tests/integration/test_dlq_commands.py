"""`cdc dlq` on a PostgreSQL to PostgreSQL pipeline whose target refuses some
rows: the dead letters are listed and shown, applied again once the target
is fixed (never one a later change of its row has overtaken, never twice),
skipped, and a partition is moved past a message at its head."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from confluent_kafka import Producer

from tests.integration.conftest import my_execute, mysql_connect
from tests.integration.daemon_process import DaemonProcess, current_lsn, wait_confirmed
from tests.integration.pipeline import cdc, pg_pipeline, wait_until
from tests.integration.sink_support import (
    SinkProcess,
    end_positions,
    rows_by_id,
    stored_positions,
    table_digest,
    wait_applied,
)

PARTITIONS = 2  # pg_pipeline's
SOURCE_T = "CREATE TABLE t (id int PRIMARY KEY, v int NOT NULL, note text)"
# The target refuses v >= 1000 until the constraint is dropped.
TARGET_T = (
    "CREATE TABLE t (id int PRIMARY KEY, v int NOT NULL, note text,"
    " CONSTRAINT t_v_small CHECK (v < 1000))"
)


def dlq(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`cdc dlq ...` as an operator types it."""
    return cdc("dlq", args[0], "-c", str(config), *args[1:])


def json_lines(result: subprocess.CompletedProcess[str]) -> list[dict[str, Any]]:
    assert result.returncode == 0, result.stderr
    return [json.loads(line) for line in result.stdout.splitlines()]


def on_source(dsn: str, *statements: str) -> None:
    """Each statement its own transaction."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        for statement in statements:
            conn.execute(statement.encode())


def row_count(dsn: str) -> int:
    try:
        return len(rows_by_id(dsn, "t"))
    except psycopg.errors.UndefinedTable:
        return 0


def caught_up(pg_dsn: str, target_dsn: str, name: str, bootstrap: str, sink: SinkProcess) -> None:
    """Until the source has every change in Kafka and the sink has applied them all."""
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        wait_confirmed(pg_dsn, name, current_lsn(conn), 60, sink)
    wait_applied(target_dsn, name, end_positions(bootstrap, [f"{name}.public.t"], PARTITIONS))
    sink.assert_alive()


def start_sink(config: Path, log: Path, target_dsn: str, rows: int) -> SinkProcess:
    sink = SinkProcess(config, log)
    if not wait_until(lambda: row_count(target_dsn) >= rows, timeout=90, every=0.3):
        sink.stop()
        raise AssertionError(f"the target never got {rows} rows:\n{sink.log_tail()}")
    return sink


@pytest.fixture
def pipeline_file(
    tmp_path: Path, pg_dsn: str, pg_target_dsn: str, kafka_bootstrap: str, topic_prefix: str
) -> Iterator[Path]:
    """The pipeline of t (20 rows) to a target refusing v >= 1000; its source
    runs for the whole test: only the sink stops for `cdc dlq`."""
    on_source(pg_dsn, SOURCE_T, "INSERT INTO t SELECT i, i, 'n' || i FROM generate_series(1, 20) i")
    on_source(pg_target_dsn, TARGET_T)
    pg_pipeline(
        tmp_path,
        topic_prefix,
        pg_dsn,
        kafka_bootstrap,
        ["public.t"],
        target={"type": "postgres", "dsn": pg_target_dsn},
        heartbeat_interval_s=1,
    )
    config = tmp_path / f"{topic_prefix}.yaml"
    source = DaemonProcess(config, tmp_path / "source.log", "source")
    try:
        yield config
    finally:
        source.stop()


def test_refused_rows_are_listed_then_redriven_once_never_over_a_newer_row(
    pipeline_file: Path,
    tmp_path: Path,
    pg_dsn: str,
    pg_target_dsn: str,
    kafka_bootstrap: str,
    topic_prefix: str,
) -> None:
    config, topic = pipeline_file, f"{topic_prefix}.public.t"
    sink = start_sink(config, tmp_path / "sink.log", pg_target_dsn, 20)
    try:
        # refused by the target, each set aside; the last one applies
        on_source(
            pg_dsn,
            "UPDATE t SET v = 5000 WHERE id = 3",
            "UPDATE t SET v = 6000, note = 'big' WHERE id = 4",
            "INSERT INTO t VALUES (21, 7000, 'new')",
            "UPDATE t SET v = 5005 WHERE id = 5",
            "UPDATE t SET v = 5006 WHERE id = 6",
            "UPDATE t SET note = 'fine' WHERE id = 1",
        )
        caught_up(pg_dsn, pg_target_dsn, topic_prefix, kafka_bootstrap, sink)
        # later changes of two refused rows, applied: those dead letters are stale now
        on_source(pg_dsn, "UPDATE t SET v = 55 WHERE id = 5", "DELETE FROM t WHERE id = 6")
        caught_up(pg_dsn, pg_target_dsn, topic_prefix, kafka_bootstrap, sink)

        running = dlq(config, "redrive", "--all")
        assert running.returncode == 1, running.stdout + running.stderr
        assert "the sink is running" in running.stderr
        logged = [e for e in sink.log_events() if e["event"] == "dead_lettered"]
    finally:
        assert sink.stop() == 0, sink.log_tail()

    listed = json_lines(dlq(config, "list", "--json"))
    by_key = {record["key"]["id"]: record for record in listed}
    assert sorted(by_key) == [3, 4, 5, 6, 21] and len(listed) == 5
    for record in listed:
        assert record["state"] == "pending" and record["reason"] == "apply", record
        assert record["table"] == "public.t" and record["topic"] == topic, record
        assert "t_v_small" in record["error"] and record["position"], record
    # each logged once by the sink, with its id and where it came from
    assert len(logged) == 5, logged
    logged_by_id = {event["id"]: event for event in logged}
    for record in listed:
        event = logged_by_id[record["id"]]
        assert (
            event["table"],
            json.loads(event["key"]),
            event["reason"],
            event["position"],
            event["topic"],
            event["partition"],
            event["offset"],
        ) == (
            "public.t",
            record["key"],
            "apply",
            record["position"],
            topic,
            record["partition"],
            record["offset"],
        )

    human = dlq(config, "list")
    assert human.returncode == 0, human.stderr
    header, *lines = human.stdout.splitlines()
    assert header.split()[:4] == ["ID", "STATE", "TABLE", "KEY"] and len(lines) == 5
    new_row = by_key[21]
    line = next(line for line in lines if line.startswith(f"{new_row['id']} "))
    assert "pending" in line and "public.t" in line and '{"id": 21}' in line
    assert f"{topic}:{new_row['partition']}:{new_row['offset']}" in line

    assert len(json_lines(dlq(config, "list", "--table", "public.t", "--json"))) == 5
    assert len(json_lines(dlq(config, "list", "--table", "t", "--json"))) == 5
    unknown = dlq(config, "list", "--table", "public.nosuch")
    assert unknown.returncode == 2 and "unknown table public.nosuch" in unknown.stderr
    assert "public.t" in unknown.stderr  # the tables there are
    none = dlq(config, "list", "--reason", "decode")
    assert none.returncode == 0 and "no dead letters with reason decode" in none.stdout

    shown = dlq(config, "show", str(new_row["id"]), "--json")
    assert shown.returncode == 0, shown.stderr
    whole = json.loads(shown.stdout)
    assert whole["value"]["after"] == {"id": 21, "v": 7000, "note": "new"}
    assert whole["value"]["op"] == "c" and "cdc.schema" in whole["headers"]
    assert "check constraint" in whole["error"] and whole["state"] == "pending"
    person = dlq(config, "show", str(new_row["id"]))
    assert person.returncode == 0 and '"v": 7000' in person.stdout
    assert "t_v_small" in person.stdout
    for bad, message in (("9999", "no dead letter 9999"), ("x1", "is not a dead-letter id")):
        result = dlq(config, "show", bad)
        assert result.returncode == 2 and message in result.stderr, (bad, result.stderr)

    # Not fixed yet: refused again, left pending.
    early = dlq(config, "redrive", str(by_key[3]["id"]))
    assert early.returncode == 1, early.stdout + early.stderr
    assert "refused" in early.stdout and "t_v_small" in early.stdout
    assert rows_by_id(pg_target_dsn, "t")[3][1] == 3

    on_source(pg_target_dsn, "ALTER TABLE t DROP CONSTRAINT t_v_small")
    done = json_lines(dlq(config, "redrive", "--all", "--json"))
    results = {record["key"]["id"]: record["result"] for record in done}
    assert results == {
        3: "redriven",
        4: "redriven",
        21: "redriven",
        5: "superseded",
        6: "superseded",
    }, done
    assert all("changed this key later" in r["detail"] for r in done if r["result"] == "superseded")
    assert table_digest(pg_target_dsn, "t") == table_digest(pg_dsn, "t")
    states = {r["key"]["id"]: r["state"] for r in json_lines(dlq(config, "list", "--json"))}
    assert states == {
        3: "redriven",
        4: "redriven",
        21: "redriven",
        5: "superseded",
        6: "superseded",
    }

    # A second redrive applies nothing: a row changed on the target since stays so.
    on_source(pg_target_dsn, "UPDATE t SET note = 'by hand' WHERE id = 21")
    again = dlq(config, "redrive", "--all")
    assert again.returncode == 0 and "nothing to redrive" in again.stdout, again.stderr
    named = dlq(config, "redrive", str(new_row["id"]))
    assert named.returncode == 0 and "already redriven" in named.stdout, named.stderr
    assert rows_by_id(pg_target_dsn, "t")[21] == (21, 7000, "by hand")
    pending = dlq(config, "list", "--state", "pending")
    assert pending.returncode == 0 and "no pending dead letters" in pending.stdout


def _produce(bootstrap: str, topic: str, partition: int, key: bytes, value: bytes) -> int:
    offsets: list[int] = []

    def delivered(err: Any, msg: Any) -> None:
        assert err is None, err
        offsets.append(msg.offset())

    producer = Producer({"bootstrap.servers": bootstrap})
    producer.produce(topic, value, key, partition=partition, on_delivery=delivered)
    producer.flush(30)
    return offsets[0]


def test_skip_marks_dead_letters_and_skip_offset_moves_a_sink_past_a_poison_head(
    pipeline_file: Path,
    tmp_path: Path,
    pg_dsn: str,
    pg_target_dsn: str,
    kafka_bootstrap: str,
    topic_prefix: str,
) -> None:
    config, topic, group = pipeline_file, f"{topic_prefix}.public.t", topic_prefix
    sink = start_sink(config, tmp_path / "sink.log", pg_target_dsn, 20)
    try:
        on_source(
            pg_dsn, "UPDATE t SET v = 5002 WHERE id = 2", "UPDATE t SET v = 5003 WHERE id = 3"
        )
        caught_up(pg_dsn, pg_target_dsn, topic_prefix, kafka_bootstrap, sink)
    finally:
        assert sink.stop() == 0, sink.log_tail()
    ids = {r["key"]["id"]: r["id"] for r in json_lines(dlq(config, "list", "--json"))}
    assert sorted(ids) == [2, 3]

    for args, message in (
        ((), "give dead-letter ids, or --all, or --table T"),
        (("--all", "--table", "public.t"), "give dead-letter ids, or --all, or --table T"),
        (("12345",), "no dead letter 12345"),
        (("--table", "public.nosuch"), "unknown table public.nosuch"),
    ):
        result = dlq(config, "skip", *args)
        assert result.returncode == 2 and message in result.stderr, (args, result.stderr)

    first = dlq(config, "skip", str(ids[2]))
    assert first.returncode == 0 and f"skipped 1 dead letters: {ids[2]}" in first.stdout
    twice = dlq(config, "skip", str(ids[2]))
    assert twice.returncode == 0 and "already skipped" in twice.stdout
    rest = dlq(config, "skip", "--table", "public.t")
    assert rest.returncode == 0 and f"skipped 1 dead letters: {ids[3]}" in rest.stdout
    assert {r["state"] for r in json_lines(dlq(config, "list", "--json"))} == {"skipped"}
    nothing = dlq(config, "redrive", "--all")
    assert nothing.returncode == 0 and "nothing to redrive" in nothing.stdout
    assert rows_by_id(pg_target_dsn, "t")[2][1] == 2  # skipped: never applied

    # A message at the head of partition 0, where the stopped sink stands.
    with psycopg.connect(pg_target_dsn) as conn:
        head = stored_positions(conn, group).get((topic, 0), 0)
    poison = _produce(kafka_bootstrap, topic, 0, b'{"id": 999}', b"{poison")
    assert poison == head
    for args, message in (
        ((topic, "0", str(head + 1)), f"the sink stands at offset {head}"),
        ((f"{topic_prefix}.public.nosuch", "0", "0"), "is not a partition of this pipeline"),
        ((topic, "7", "0"), "is not a partition of this pipeline"),
    ):
        result = dlq(config, "skip-offset", *args)
        assert result.returncode == 2 and message in result.stderr, (args, result.stderr)
    skipped = dlq(config, "skip-offset", topic, "0", str(head))
    assert skipped.returncode == 0, skipped.stderr
    assert f"offset {head}" in skipped.stdout and "set aside as dead letter" in skipped.stdout
    with psycopg.connect(pg_target_dsn) as conn:
        assert stored_positions(conn, group)[(topic, 0)] == head + 1
    at_head = dlq(config, "skip-offset", topic, "0", str(head + 1))
    assert at_head.returncode == 2 and "no message at its head" in at_head.stderr

    (letter,) = json_lines(dlq(config, "list", "--reason", "skipped", "--json"))
    assert (letter["topic"], letter["partition"], letter["offset"]) == (topic, 0, head)
    assert letter["key"] == {"id": 999} and letter["state"] == "pending"
    assert "skip-offset" in letter["error"]
    assert json.loads(dlq(config, "show", str(letter["id"]), "--json").stdout)["value"] == "{poison"

    # The sink goes on past it: later rows apply, and it never reads the poison itself.
    sink = start_sink(config, tmp_path / "sink2.log", pg_target_dsn, 20)
    try:
        on_source(pg_dsn, "INSERT INTO t SELECT i, i, 'later' FROM generate_series(21, 40) i")
        caught_up(pg_dsn, pg_target_dsn, topic_prefix, kafka_bootstrap, sink)
    finally:
        assert sink.stop() == 0, sink.log_tail()
    assert sorted(rows_by_id(pg_target_dsn, "t")) == list(range(1, 41))
    every = json_lines(dlq(config, "list", "--json"))
    assert [r for r in every if r["offset"] == head and r["partition"] == 0] == [letter]


def test_redrive_on_a_mysql_target_once_its_column_is_wide_enough(
    tmp_path: Path, pg_dsn: str, mysql_dsn: str, kafka_bootstrap: str, topic_prefix: str
) -> None:
    on_source(pg_dsn, SOURCE_T, "INSERT INTO t SELECT i, i, 'n' || i FROM generate_series(1, 5) i")
    my_execute(mysql_dsn, "CREATE TABLE t (id INT PRIMARY KEY, v INT NOT NULL, note VARCHAR(5))")
    pg_pipeline(
        tmp_path,
        topic_prefix,
        pg_dsn,
        kafka_bootstrap,
        ["public.t"],
        target={"type": "mysql", "dsn": mysql_dsn},
        heartbeat_interval_s=1,
    )
    config = tmp_path / f"{topic_prefix}.yaml"
    topic = f"{topic_prefix}.public.t"

    def target_rows() -> list[tuple[Any, ...]]:
        with mysql_connect(mysql_dsn) as conn, conn.cursor() as cur:
            cur.execute("SELECT id, v, note FROM t ORDER BY id")
            return list(cur.fetchall())

    source = DaemonProcess(config, tmp_path / "source.log", "source")
    try:
        sink = SinkProcess(config, tmp_path / "sink.log")
        try:
            assert wait_until(lambda: len(target_rows()) == 5, timeout=90), sink.log_tail()
            on_source(
                pg_dsn,
                "UPDATE t SET note = 'much too long' WHERE id = 2",
                "INSERT INTO t VALUES (6, 6, 'also too long')",
            )
            with psycopg.connect(pg_dsn, autocommit=True) as conn:
                wait_confirmed(pg_dsn, topic_prefix, current_lsn(conn), 60, source)
            ends = end_positions(kafka_bootstrap, [topic], PARTITIONS)
            assert wait_until(lambda: _mysql_offsets(mysql_dsn, topic_prefix) == ends, timeout=60)
        finally:
            assert sink.stop() == 0, sink.log_tail()
    finally:
        source.stop()

    listed = json_lines(dlq(config, "list", "--json"))
    assert sorted(r["key"]["id"] for r in listed) == [2, 6]
    assert {r["state"] for r in listed} == {"pending"}
    my_execute(mysql_dsn, "ALTER TABLE t MODIFY note VARCHAR(100)")
    done = json_lines(dlq(config, "redrive", "--all", "--json"))
    assert {r["key"]["id"]: r["result"] for r in done} == {2: "redriven", 6: "redriven"}
    with psycopg.connect(pg_dsn) as conn:
        assert target_rows() == conn.execute("SELECT id, v, note FROM t ORDER BY id").fetchall()
    with mysql_connect(mysql_dsn) as conn, conn.cursor() as cur:
        cur.execute("SELECT dead_letter_id, state FROM cdc_dead_letters")
        assert sorted(cur.fetchall()) == sorted((r["id"], "redriven") for r in listed)
    again = dlq(config, "redrive", "--all")
    assert again.returncode == 0 and "nothing to redrive" in again.stdout, again.stderr


def _mysql_offsets(dsn: str, group: str) -> dict[tuple[str, int], int]:
    with mysql_connect(dsn) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT topic, kafka_partition, next_offset FROM cdc_offsets WHERE consumer_group = %s",
            (group,),
        )
        return {(topic, partition): offset for topic, partition, offset in cur.fetchall()}
