"""Schema changes at the edges, on the real servers, with `sink.workers: 2`: an added
column whose per-row values the stream cannot carry (the sink stops with the fix, and
goes on once the user applies it), a table created on the source mid-stream, changes
made while the initial snapshot runs, and the TRUNCATE policy."""

from __future__ import annotations

import socket
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from confluent_kafka import KafkaException, TopicPartition
from prometheus_client.parser import text_string_to_metric_families

from cdc.topics import dead_letter_topic, offsets_topic, table_topic
from tests.integration.daemon_process import cdc_command
from tests.integration.pipeline import wait_until
from tests.integration.schema_load import (
    Run,
    SchemaLoad,
    Shape,
    differences,
    end_problems,
    fill,
    streaming,
    wait_snapshot,
)
from tests.integration.sink_support import QUICK_GROUP, SinkProcess, kafka_consumer, read_topic
from tests.integration.test_schema_changes import (
    BASE,
    PLAIN,
    Case,
    Sides,
    equal_rows,
    label,
    sides,
)

PG_TO_PG, MARIADB_TO_PG = Case("postgres", "postgres"), Case("mysql", "postgres")
KEYS = 200


@pytest.fixture
def dsns(pg_dsn: str, pg_target_dsn: str, mysql_dsn: str) -> dict[str, str]:
    return {"pg": pg_dsn, "pg_target": pg_target_dsn, "mysql": mysql_dsn}


def restart_sink(run: Run, **sections: Any) -> None:
    """Stop the sink (if it still runs), set `sections` in the pipeline file and start
    it again, as a user does after changing the file."""
    run.sink.stop()
    raw = yaml.safe_load(run.config.read_text())
    raw.update(sections)
    run.config.write_text(yaml.safe_dump(raw))
    run.logs.append(run.tmp_path / f"sink-{len(run.logs)}.log")
    run.sink = SinkProcess(run.config, run.logs[-1])


def dead_letters(bootstrap: str, name: str) -> int:
    return len(read_topic(bootstrap, dead_letter_topic(name), 1000, timeout=3))


def snapshot_completed_ms(bootstrap: str, name: str) -> int | None:
    """When the source recorded its snapshot complete (what `cdc status` reads)."""
    for message in read_topic(bootstrap, offsets_topic(name), 100_000, timeout=3):
        if message.key() == b"snapshot/complete":
            return message.timestamp()[1]
    return None


def published(bootstrap: str, topic: str) -> int:
    """How many messages `topic` holds (0 before it exists)."""
    consumer = kafka_consumer(bootstrap)
    try:
        metadata = consumer.list_topics(topic, timeout=10).topics[topic]
        if metadata.error is not None:
            return 0
        return sum(
            consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
            for p in metadata.partitions
        )
    except KafkaException:  # a topic just created: its partitions have no leader yet
        return 0
    finally:
        consumer.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def metric(port: int, name: str, **labels: str) -> float:
    """The sum of `name`'s samples on the daemon's /metrics whose labels include `labels`."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        text = response.read().decode()
    return sum(
        s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == name and labels.items() <= s.labels.items()
    )


def equal_rows_without(both: Sides, table: str, column: str) -> list[str]:
    """The table's rows, source against target, on the source's columns but `column`."""
    columns = [c for c in both.source.columns(table) if c not in {"id", column}]
    found = differences(table, columns, both.source, both.target)
    return [] if found is None else [found]


def test_a_volatile_default_on_postgres_copies_the_table_again_and_ends_equal(
    tmp_path: Path, dsns: dict[str, str], kafka_bootstrap: str, topic_prefix: str
) -> None:
    """`ADD COLUMN token uuid DEFAULT gen_random_uuid()` gives each existing row its own
    value, which the stream does not carry: the source copies the table again."""
    both = sides(PG_TO_PG, dsns, ["t_vol"])
    both.source.execute(f"CREATE TABLE t_vol {PLAIN.format('')}")
    fill(both.source, "t_vol", Shape(BASE, BASE), KEYS)
    with streaming(tmp_path, topic_prefix, kafka_bootstrap, both.sections) as run:
        wait_snapshot(run, both.target, ["t_vol"], KEYS)
        both.source.execute(
            "ALTER TABLE t_vol ADD COLUMN token uuid DEFAULT gen_random_uuid()",
            "INSERT INTO t_vol (id, counter, label) VALUES (1001, 1, 'after the change')",
            "UPDATE t_vol SET counter = counter + 1 WHERE id <= 20",
            "DELETE FROM t_vol WHERE id BETWEEN 21 AND 30",
        )
        problems = end_problems(run, topic_prefix, kafka_bootstrap)
        problems += equal_rows(both, ["t_vol"])
        summary = run.log_summary(both.target)
    assert not problems, "\n".join([*problems, summary])


def test_a_volatile_default_on_mariadb_stops_the_sink_with_the_fix_and_ignore_goes_on(
    tmp_path: Path, dsns: dict[str, str], kafka_bootstrap: str, topic_prefix: str
) -> None:
    """`ADD COLUMN token ... DEFAULT (UUID())` gave each existing row its own value,
    which the binlog does not carry: the sink stops rather than invent them."""
    both = sides(MARIADB_TO_PG, dsns, ["t_vol"])
    shape = Shape(BASE, BASE)
    both.source.execute(f"CREATE TABLE t_vol {PLAIN.format('')}")
    fill(both.source, "t_vol", shape, KEYS)
    target = f"{both.target.schema}.t_vol"
    with streaming(tmp_path, topic_prefix, kafka_bootstrap, both.sections) as run:
        wait_snapshot(run, both.target, ["t_vol"], KEYS)
        both.source.execute(
            "ALTER TABLE t_vol ADD COLUMN token CHAR(36) DEFAULT (UUID())",
            "INSERT INTO t_vol (id, counter, label) VALUES (1001, 1, 'after the change')",
            "UPDATE t_vol SET counter = counter + 1 WHERE id <= 20",
            "DELETE FROM t_vol WHERE id BETWEEN 21 AND 30",
        )
        stopped = wait_until(lambda: not run.sink.alive(), timeout=30, every=0.2)
        assert stopped, f"the sink went on past the volatile default\n{run.log_summary()}"
        assert run.sink.proc.returncode != 0
        errors = [e for e in run.sink.log_events() if e["event"] in {"stopped", "crashed"}]
        named = [
            e
            for e in errors
            if e["event"] == "stopped"
            and "t_vol" in e.get("error", "")
            and "token" in e.get("error", "")
            and "schema_changes.add_column: ignore" in e.get("fix", "")
        ]
        assert named, f"no `stopped` line names t_vol, token and the fix: {errors}"
        assert not [e for e in errors if e["event"] == "crashed"], errors
        assert dead_letters(kafka_bootstrap, topic_prefix) == 0

        # the fix the error names: go on without the column
        restart_sink(run, schema_changes={"add_column": "ignore"})
        both.source.execute(
            "INSERT INTO t_vol (id, counter, label) VALUES (1002, 2, 'after the restart')",
            "UPDATE t_vol SET label = 'updated after the restart' WHERE id <= 5",
        )
        arrived = wait_until(
            lambda: (
                both.target.count("t_vol") == KEYS - 10 + 2
                and both.target.query(f"SELECT count(*) FROM {target} WHERE id = 1002")[0][0] == 1
            ),
            timeout=30,
            every=0.2,
        )
        columns = list(both.target.columns("t_vol"))
        status = subprocess.run(
            [*cdc_command(), "status", "-c", str(run.config)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        problems = [] if arrived else ["the rows written after the restart did not arrive"]
        if not run.sink.alive():
            problems.append(f"the sink stopped again: {run.sink.proc.returncode}")
        problems += equal_rows_without(both, "t_vol", "token")
        summary = run.log_summary(both.target)
    assert not problems, "\n".join([*problems, summary])
    assert "token" not in columns, columns
    assert dead_letters(kafka_bootstrap, topic_prefix) == 0
    assert status.returncode == 0, status.stderr
    shown = [line for line in status.stdout.splitlines() if "add_column token" in line]
    assert shown and "ignore" in shown[-1], status.stdout


def test_truncate_ignore_keeps_the_target_rows_and_counts_it(
    tmp_path: Path, dsns: dict[str, str], kafka_bootstrap: str, topic_prefix: str
) -> None:
    both = sides(PG_TO_PG, dsns, ["t_tr"])
    both.source.execute(f"CREATE TABLE t_tr {PLAIN.format('')}")
    fill(both.source, "t_tr", Shape(BASE, BASE), KEYS)
    policy = {"truncate": "ignore"}
    with streaming(
        tmp_path, topic_prefix, kafka_bootstrap, both.sections, schema_changes=policy
    ) as run:
        # the source in this process serves its own /metrics: the sink gets a port of its own
        port = free_port()
        restart_sink(run, metrics={"listen": f"127.0.0.1:{port}"})
        wait_snapshot(run, both.target, ["t_tr"], KEYS)
        both.source.execute(
            "TRUNCATE t_tr",
            "INSERT INTO t_tr (id, counter, label) VALUES (1001, 1, 'after the truncate')",
            "UPDATE t_tr SET label = 'updated after the truncate' WHERE id = 1001",
        )
        wanted = [(1001, "updated after the truncate")]
        arrived = wait_until(
            lambda: (
                both.target.query("SELECT id, label FROM public.t_tr WHERE id > 1000") == wanted
            ),
            timeout=30,
            every=0.2,
        )
        kept = both.target.count("t_tr")
        # the workers report their counts to the daemon once a second
        counted = wait_until(
            lambda: metric(port, "cdc_schema_changes_total", kind="truncate", action="ignore") > 0,
            timeout=10,
            every=0.5,
        )
        truncates = metric(port, "cdc_schema_changes_total", kind="truncate", action="ignore")
        alive = run.sink.alive()
        summary = run.log_summary(both.target)
    assert arrived, f"the insert after the TRUNCATE did not arrive\n{summary}"
    assert kept == KEYS + 1, f"the target has {kept} rows, wanted its {KEYS} kept and 1 new"
    assert alive, summary
    assert counted, f"cdc_schema_changes_total{{kind=truncate,action=ignore}} is 0\n{summary}"
    # one TRUNCATE on the source, however many partitions of its topic carry it
    assert truncates == 1, (
        f"one TRUNCATE on the source, counted {truncates:g} times in"
        f" cdc_schema_changes_total{{kind=truncate,action=ignore}}\n{summary}"
    )
    assert dead_letters(kafka_bootstrap, topic_prefix) == 0


@pytest.mark.parametrize("case", [PG_TO_PG, MARIADB_TO_PG], ids=lambda case: case.id)
def test_rows_written_right_after_a_truncate_are_kept_on_every_partition(
    tmp_path: Path, case: Case, dsns: dict[str, str], kafka_bootstrap: str, topic_prefix: str
) -> None:
    # Each of the topic's 6 partitions gets a copy of the TRUNCATE; two sink
    # processes of two workers each share them. A copy applied after another
    # partition's later rows must not delete them.
    both = sides(case, dsns, ["t_tr"])
    both.source.execute(f"CREATE TABLE t_tr {PLAIN.format('')}")
    fill(both.source, "t_tr", Shape(BASE, BASE), KEYS)
    kafka = {"bootstrap_servers": kafka_bootstrap, "partitions": 6, "consumer": QUICK_GROUP}
    with streaming(tmp_path, topic_prefix, kafka_bootstrap, both.sections, kafka=kafka) as run:
        # a second sink daemon of the pipeline on this host: its own static member names
        raw = yaml.safe_load(run.config.read_text())
        raw["sink"]["instance_id"] = "second-sink"
        config = tmp_path / "second-sink.yaml"
        config.write_text(yaml.safe_dump(raw))
        second = SinkProcess(config, tmp_path / "second-sink.log")
        try:
            wait_snapshot(run, both.target, ["t_tr"], KEYS)
            for _ in range(3):
                both.source.execute("TRUNCATE t_tr")
                fill(both.source, "t_tr", Shape(BASE, BASE), 300)
            problems = end_problems(run, topic_prefix, kafka_bootstrap)
            problems += equal_rows(both, ["t_tr"])
            summary = run.log_summary(both.target)
        finally:
            second.stop()
    assert not problems, "\n".join([*problems, summary])


def test_a_table_created_mid_stream_that_the_pattern_selects_reaches_the_target(
    tmp_path: Path, dsns: dict[str, str], kafka_bootstrap: str, topic_prefix: str
) -> None:
    """MariaDB -> PostgreSQL, `source.tables: {include: [<database>.*]}` and
    `target.create_tables: true`: no restart."""
    both = sides(MARIADB_TO_PG, dsns, ["t_seed"])
    database = urlsplit(dsns["mysql"]).path.strip("/")
    both.sections["source"]["tables"] = {"include": [f"{database}.*"]}
    shape = Shape(BASE, BASE)
    both.source.execute(f"CREATE TABLE t_seed {PLAIN.format('')}")
    fill(both.source, "t_seed", shape, KEYS)
    with streaming(tmp_path, topic_prefix, kafka_bootstrap, both.sections) as run:
        wait_snapshot(run, both.target, ["t_seed"], KEYS)
        load = SchemaLoad(both.source, {"t_seed": shape}, KEYS, seed=4)
        load.start()
        time.sleep(0.5)
        # created between two writes, then written from the next one on
        load.alter("new_t", [f"CREATE TABLE new_t {PLAIN.format('')}"], shape)
        both.source.execute(
            "INSERT INTO new_t (id, counter, label) VALUES (1, 1, 'first'), (2, 2, 'second')",
            "UPDATE new_t SET label = 'first, updated' WHERE id = 1",
            "DELETE FROM new_t WHERE id = 2",
        )
        time.sleep(2)
        load.stop()
        # the sink notices a new topic within its metadata refresh (5 s); `cdc verify`
        # reports a table the target does not have yet at once, without waiting
        rows = both.source.count("new_t")
        created = wait_until(lambda: both.target.count("new_t") == rows, timeout=30, every=0.2)
        problems = (
            []
            if created
            else [
                f"new_t on the target: {both.target.count('new_t')} rows"
                f" (-1: no table) of the source's {rows} after 30 s"
            ]
        )
        problems += end_problems(run, topic_prefix, kafka_bootstrap)
        problems += equal_rows(both, ["t_seed", "new_t"])
        summary = run.log_summary(both.target)
    assert not problems, "\n".join([*problems, summary])


SNAPSHOT_ROWS = 40_000
BULK_FILL = {  # the snapshot's rows, in one statement
    "postgres": "INSERT INTO t_snap SELECT n, n, 'row ' || n, 'a' || n"
    " FROM generate_series(1, {rows}) n",
    "mysql": "INSERT INTO t_snap SELECT seq, seq, concat('row ', seq), concat('a', seq)"
    " FROM seq_1_to_{rows}",
}
SNAPSHOT_CHANGES = {
    "postgres": [
        "ALTER TABLE t_snap ADD COLUMN c text DEFAULT 'd'",
        "ALTER TABLE t_snap RENAME COLUMN a TO b",
    ],
    "mysql": [
        "ALTER TABLE t_snap ADD COLUMN c TEXT DEFAULT 'd'",
        "ALTER TABLE t_snap CHANGE a b TEXT",
    ],
}


@pytest.mark.parametrize("case", [PG_TO_PG, MARIADB_TO_PG], ids=lambda c: c.id)
def test_schema_changes_during_the_snapshot_end_equal(
    case: Case, tmp_path: Path, dsns: dict[str, str], kafka_bootstrap: str, topic_prefix: str
) -> None:
    """ADD COLUMN c DEFAULT 'd' and a rename of a to b while the snapshot is being read
    in small chunks, with writes around them."""
    both = sides(case, dsns, ["t_snap"])
    shape = Shape({**BASE, "a": label}, {**BASE, "a": label})
    both.source.execute(
        f"CREATE TABLE t_snap {PLAIN.format(', a text')}",
        BULK_FILL[case.source].format(rows=SNAPSHOT_ROWS),
    )
    snapshot = {"chunk_rows": 50}
    with streaming(
        tmp_path, topic_prefix, kafka_bootstrap, both.sections, snapshot=snapshot
    ) as run:
        load = SchemaLoad(both.source, {"t_snap": shape}, SNAPSHOT_ROWS, seed=5)
        topic = table_topic(topic_prefix, both.source.schema, "t_snap")
        started = wait_until(lambda: published(kafka_bootstrap, topic) > 0, timeout=60, every=0.02)
        assert started, f"no snapshot row reached Kafka\n{run.log_summary()}"
        load.start()
        renamed = shape.but(drop="a", write={"b": lambda n: f"b{n}"})
        altered_ms = time.time_ns() // 1_000_000
        load.alter("t_snap", SNAPSHOT_CHANGES[case.source], renamed)
        time.sleep(2)
        load.stop()
        problems = end_problems(run, topic_prefix, kafka_bootstrap, wait_s=60)
        problems += equal_rows(both, ["t_snap"])
        columns = list(both.target.columns("t_snap"))
        if "b" not in columns or "a" in columns or "c" not in columns:
            problems.append(f"t_snap on the target has columns {columns}: wanted b and c, not a")
        else:
            rows = both.source.count("t_snap")
            with_d = both.target.query(
                f"SELECT count(*) FROM {both.target.table('t_snap')} WHERE c = 'd'"
            )[0][0]
            if with_d != rows:
                problems.append(f"{with_d} of {rows} target rows have c = 'd'")
        summary = run.log_summary(both.target)
    completed_ms = snapshot_completed_ms(kafka_bootstrap, topic_prefix)
    assert completed_ms is not None, f"the source never recorded its snapshot complete\n{summary}"
    assert completed_ms > altered_ms, (
        f"the snapshot was complete {altered_ms - completed_ms} ms before the ALTER"
    )
    assert not problems, "\n".join([*problems, summary])
