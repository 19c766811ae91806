"""`cdc replay`: rewinding the sink's stored offsets re-applies the changes from
there, and the target ends equal to the source again."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import yaml
from click.testing import CliRunner, Result
from confluent_kafka import TopicPartition

from cdc.cli import main
from tests.integration.pipeline import pg_pipeline, running, wait_until
from tests.integration.sink_support import (
    Positions,
    end_positions,
    kafka_consumer,
    stored_positions,
    table_digest,
    wait_applied,
)

PARTITIONS = 2  # pg_pipeline's


def replay(config: Path, *args: str) -> Result:
    return CliRunner().invoke(main, ["replay", "-c", str(config), *args])


def _timestamps(bootstrap: str, topic: str, ends: Positions) -> dict[int, list[int]]:
    """Each partition's message timestamps (ms), in offset order."""
    consumer = kafka_consumer(bootstrap)
    consumer.assign([TopicPartition(topic, p, 0) for p in range(PARTITIONS)])
    stamps: dict[int, list[int]] = {p: [] for p in range(PARTITIONS)}
    deadline = time.monotonic() + 60
    try:
        while any(len(stamps[p]) < ends[(topic, p)] for p in stamps):
            assert time.monotonic() < deadline, "could not read the topic back"
            for msg in consumer.consume(1000, 0.5):
                partition = msg.partition()
                if msg.error() is None and partition is not None:
                    stamps[partition].append(msg.timestamp()[1])
    finally:
        consumer.close()
    return stamps


def test_replay_from_a_timestamp_restores_wiped_rows(
    tmp_path: Path, pg_dsn: str, pg_target_dsn: str, kafka_bootstrap: str, topic_prefix: str
) -> None:
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE items (id int PRIMARY KEY, v int NOT NULL, note text)")
    settings = pg_pipeline(
        tmp_path,
        topic_prefix,
        pg_dsn,
        kafka_bootstrap,
        ["public.items"],
        target={"type": "postgres", "dsn": pg_target_dsn, "create_tables": True},
    )
    config = tmp_path / f"{topic_prefix}.yaml"
    topic, group = f"{topic_prefix}.public.items", settings.consumer_group

    def equal() -> bool:
        try:
            return table_digest(pg_target_dsn, "items") == table_digest(pg_dsn, "items")
        except psycopg.errors.UndefinedTable:
            return False

    with running(settings, "all"), psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute("INSERT INTO items SELECT i, i, 'first' FROM generate_series(1, 300) i")
        assert wait_until(equal, timeout=60)
        time.sleep(1.0)  # Kafka timestamps are milliseconds: keep the two phases apart
        since_ms = int(time.time() * 1000)
        time.sleep(1.0)
        conn.execute("UPDATE items SET v = v + 1000, note = 'second' WHERE id <= 100")
        conn.execute("INSERT INTO items SELECT i, i, 'second' FROM generate_series(301, 400) i")
        conn.execute("DELETE FROM items WHERE id BETWEEN 350 AND 359")
        assert wait_until(equal, timeout=60)

        refused = replay(config, "--from-timestamp", str(since_ms))
        assert refused.exit_code == 1, refused.output
        assert "the sink is running" in refused.stderr
        looked = replay(config, "--from-timestamp", str(since_ms), "--dry-run")
        assert looked.exit_code == 0 and "stop it before the real replay" in looked.stdout

    ends = end_positions(kafka_bootstrap, [topic], PARTITIONS)
    with psycopg.connect(pg_target_dsn, autocommit=True) as conn:
        before = stored_positions(conn, group)
        assert before == ends
        # Rows lost on the target, and rows changed there: all changed after `since_ms`.
        conn.execute("DELETE FROM items WHERE id <= 40 OR id > 380")
        conn.execute("UPDATE items SET v = -1 WHERE id BETWEEN 50 AND 60")
    assert not equal()

    dry = replay(config, "--from-timestamp", str(since_ms), "--dry-run", "--json")
    assert dry.exit_code == 0, dry.output
    plan: dict[str, Any] = json.loads(dry.stdout)
    assert plan["dry_run"] and plan["group"] == group
    moves = {(m["topic"], m["partition"]): m for m in plan["partitions"]}
    assert set(moves) == set(ends)
    stamps = _timestamps(kafka_bootstrap, topic, ends)
    for (t, p), move in moves.items():
        new = move["new"]
        assert move["current"] == ends[(t, p)] and new <= move["current"]
        # exactly the first message at or after the timestamp
        assert all(ts < since_ms for ts in stamps[p][:new]), (p, new)
        assert new == ends[(t, p)] or stamps[p][new] >= since_ms, (p, new)
        assert move["replayed"] == move["current"] - new
    assert 0 < sum(m["replayed"] for m in moves.values()) < sum(ends.values())
    with psycopg.connect(pg_target_dsn) as conn:
        assert stored_positions(conn, group) == before, "a dry run changed the offsets"

    human = replay(config, "--from-timestamp", str(since_ms), "--dry-run")
    assert human.exit_code == 0 and topic in human.stdout and "dry run" in human.stdout

    iso = datetime.fromtimestamp(since_ms / 1000, UTC).isoformat().replace("+00:00", "Z")
    done = replay(config, "--from-timestamp", iso)
    assert done.exit_code == 0, done.output
    assert "rewound" in done.stdout
    with psycopg.connect(pg_target_dsn) as conn:
        assert stored_positions(conn, group) == {k: m["new"] for k, m in moves.items()}

    with running(settings, "sink"):
        assert wait_until(equal, timeout=60), "the replay did not restore the target"
        wait_applied(pg_target_dsn, group, ends)

    # From explicit offsets: the very beginning, every change re-applied, same rows.
    with psycopg.connect(pg_target_dsn, autocommit=True) as conn:
        conn.execute("UPDATE items SET v = -2 WHERE id = 200")  # changed only in phase one
    spec = ",".join(f"{topic}:{p}:0" for p in range(PARTITIONS))
    back = replay(config, "--from-offsets", spec, "--json")
    assert back.exit_code == 0, back.output
    assert json.loads(back.stdout)["changed"] == PARTITIONS
    with running(settings, "sink"):
        assert wait_until(equal, timeout=60)
        wait_applied(pg_target_dsn, group, ends)

    # Past where the sink stands: refused, nothing changed.
    ahead = replay(config, "--from-offsets", f"{topic}:0:{ends[(topic, 0)] + 1}")
    assert ahead.exit_code == 2 and "only moves back" in ahead.stderr
    with psycopg.connect(pg_target_dsn) as conn:
        assert stored_positions(conn, group) == ends


def test_replay_refuses_bad_input(
    tmp_path: Path, pg_dsn: str, pg_target_dsn: str, kafka_bootstrap: str, topic_prefix: str
) -> None:
    settings = pg_pipeline(
        tmp_path,
        topic_prefix,
        pg_dsn,
        kafka_bootstrap,
        ["public.items"],
        target={"type": "postgres", "dsn": pg_target_dsn},
    )
    config = tmp_path / f"{topic_prefix}.yaml"
    topic = f"{settings.kafka.topic_prefix}.public.items"
    cases = {
        (): "exactly one of",
        ("--from-timestamp", "1", "--from-offsets", f"{topic}:0:0"): "exactly one of",
        ("--from-timestamp", "yesterday"): "neither epoch milliseconds nor ISO-8601",
        ("--from-offsets", "items:0"): "is not topic:partition:offset",
        ("--from-offsets", f"{topic}:0:-1"): "is not topic:partition:offset",
        ("--from-offsets", f"{topic}:0:1,{topic}:0:2"): "twice",
        ("--from-offsets", "elsewhere.public.items:0:0"): "not a partition of this pipeline",
    }
    for args, message in cases.items():
        result = replay(config, *args)
        assert result.exit_code == 2, (args, result.output)
        assert message in result.stderr, (args, result.stderr)

    source_only = tmp_path / "source-only.yaml"
    raw = yaml.safe_load(config.read_text())
    del raw["target"]
    source_only.write_text(yaml.safe_dump(raw))
    result = replay(source_only, "--from-timestamp", "0")
    assert result.exit_code == 2 and "has no target" in result.stderr
