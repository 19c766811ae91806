"""Conflict policies on real rows (the table of sinks/conflicts.py), one table per
policy in one pipeline run as `cdc run --role all`: the target rows it leaves,
the cdc_sink_conflicts counts on /metrics, the `conflict` log lines, and for
`error` the dead letters."""

from __future__ import annotations

import socket
import time
import urllib.request
from pathlib import Path
from typing import Any

import psycopg
import yaml
from prometheus_client.parser import text_string_to_metric_families

from tests.integration.daemon_process import current_lsn, wait_confirmed
from tests.integration.pipeline import pg_pipeline, wait_until, write_config
from tests.integration.sink_support import (
    SinkProcess,
    end_positions,
    headers_of,
    key_of,
    read_topic,
    rows_by_id,
    table_digest,
    wait_applied,
)

POLICIES = {
    "source-wins": "c_source_wins",
    "target-wins": "c_target_wins",
    "last-writer-wins": "c_lww",
    "error": "c_error",
}
KINDS = ("insert_exists", "update_missing", "delete_missing")
Row = tuple[Any, ...]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _conflict_counts(port: int) -> dict[tuple[str, str], float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        text = response.read().decode()
    return {
        (sample.labels["table"], sample.labels["kind"]): sample.value
        for family in text_string_to_metric_families(text)
        if family.name == "cdc_sink_conflicts"
        for sample in family.samples
        if sample.name == "cdc_sink_conflicts_total"
    }


def _expected(source: dict[int, Row], policy: str, table: str) -> dict[int, Row]:
    """The target after the changes, by the policy table of sinks/conflicts.py."""
    rows = dict(source)
    if policy in {"target-wins", "error"}:
        rows[100] = (100, "target", -100)  # insert_exists: the target's row stays
        del rows[2]  # update_missing: skipped (target-wins) / dead letter (error)
    if policy == "last-writer-wins":
        rows[4] = (4, "newer-writer", -4)  # older: a newer change wrote the row
    # delete_missing is ignored (or dead-lettered): row 3 is gone either way
    return rows


def test_each_conflict_policy_on_real_rows(
    tmp_path: Path, pg_dsn: str, pg_target_dsn: str, kafka_bootstrap: str, topic_prefix: str
) -> None:
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        for table in POLICIES.values():
            conn.execute(f"CREATE TABLE {table} (id int PRIMARY KEY, owner text, v int)")
            conn.execute(f"INSERT INTO {table} SELECT i, 'src', i FROM generate_series(1, 10) i")
    overrides = {f"public.{t}": {"conflict": p} for p, t in POLICIES.items() if p != "source-wins"}
    pg_pipeline(
        tmp_path,
        topic_prefix,
        pg_dsn,
        kafka_bootstrap,
        [f"public.{t}" for t in POLICIES.values()],
        target={
            "type": "postgres",
            "dsn": pg_target_dsn,
            "create_tables": True,
            "tables": overrides,
        },
        heartbeat_interval_s=1,
    )
    config = tmp_path / f"{topic_prefix}.yaml"
    raw = yaml.safe_load(config.read_text())
    port = _free_port()
    raw["metrics"]["listen"] = f"127.0.0.1:{port}"
    settings = write_config(config, raw)
    topics = [f"{topic_prefix}.public.{t}" for t in POLICIES.values()]

    daemon = SinkProcess(config, tmp_path / "cdc.log", role="all")
    try:

        def snapshot_applied() -> bool:
            daemon.assert_alive()
            try:
                return all(
                    table_digest(pg_target_dsn, t) == table_digest(pg_dsn, t)
                    for t in POLICIES.values()
                )
            except psycopg.errors.UndefinedTable:
                return False

        assert wait_until(snapshot_applied, timeout=90)
        assert _conflict_counts(port) == {}  # snapshot reads never conflict

        # The target changes on its own ...
        future_ms = int(time.time() * 1000) + 3_600_000
        with psycopg.connect(pg_target_dsn, autocommit=True) as conn:
            for table in POLICIES.values():
                conn.execute(f"INSERT INTO {table} VALUES (100, 'target', -100)")
                conn.execute(f"DELETE FROM {table} WHERE id IN (2, 3)")
                conn.execute(f"UPDATE {table} SET owner = 'newer-writer', v = -4 WHERE id = 4")
                # ... as another last-writer-wins writer would record it
                conn.execute(
                    "INSERT INTO cdc_row_versions VALUES (%s, '[4]', %s, 0, 0)"
                    " ON CONFLICT (table_name, row_key) DO UPDATE SET ts_ms = EXCLUDED.ts_ms",
                    (f"public.{table}", future_ms),
                )
        # ... and then the source changes the same rows: first inserts alone (an
        # insert-only batch tries a direct COPY, which meets the target's row) ...
        with psycopg.connect(pg_dsn, autocommit=True) as conn:
            for table in POLICIES.values():
                conn.execute(f"INSERT INTO {table} VALUES (100, 'src', 100)")
            wait_confirmed(pg_dsn, topic_prefix, current_lsn(conn), 90)  # slot: the name
            ends = end_positions(kafka_bootstrap, topics, 2)
            wait_applied(pg_target_dsn, settings.consumer_group, ends)
            # ... then updates and deletes.
            for table in POLICIES.values():
                conn.execute(f"UPDATE {table} SET v = 200 WHERE id = 2")
                conn.execute(f"DELETE FROM {table} WHERE id = 3")
                conn.execute(f"UPDATE {table} SET v = 400 WHERE id = 4")
                conn.execute(f"UPDATE {table} SET v = 500 WHERE id = 5")
            wait_confirmed(pg_dsn, topic_prefix, current_lsn(conn), 90)
        ends = end_positions(kafka_bootstrap, topics, 2)
        wait_applied(pg_target_dsn, settings.consumer_group, ends)
        counts = _conflict_counts(port)
        daemon.assert_alive()
    finally:
        daemon.stop()

    for policy, table in POLICIES.items():
        source = rows_by_id(pg_dsn, table)
        assert rows_by_id(pg_target_dsn, table) == _expected(source, policy, table), policy
        name = f"public.{table}"
        wanted = dict.fromkeys(KINDS, 1.0) | (
            {"older": 1.0} if policy == "last-writer-wins" else {}
        )
        got = {kind: n for (t, kind), n in counts.items() if t == name}
        assert got == wanted, f"{policy}: cdc_sink_conflicts {got}"
        logged = sorted(
            (e["kind"], e["key"])
            for e in daemon.log_events()
            if e["event"] == "conflict" and e["table"] == name
        )
        keys = {"insert_exists": [100], "update_missing": [2], "delete_missing": [3], "older": [4]}
        assert logged == sorted((kind, keys[kind]) for kind in wanted), f"{policy}: {logged}"

    dead = read_topic(kafka_bootstrap, f"{topic_prefix}.__dlq", 4, timeout=5)
    letters = sorted((key_of(m)["id"], headers_of(m)) for m in dead)
    assert [key for key, _ in letters] == [2, 3, 100], "only policy error dead-letters"
    kinds = ["update_missing", "delete_missing", "insert_exists"]
    for (key, headers), kind in zip(letters, kinds, strict=True):
        assert headers["cdc.topic"] == f"{topic_prefix}.public.c_error", key
        assert headers["cdc.reason"] == "conflict", key
        assert headers["cdc.error"] == f"conflict: {kind}", key
