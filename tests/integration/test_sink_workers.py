"""`sink.workers: 2`: two sink processes share the partitions; one killed with
-9 is started again and the target still ends equal to the source, and a
killed worker (or a killed daemon started again on the same host) applies
again within seconds, not after Kafka's session timeout."""

from __future__ import annotations

import os
import signal
import socket
import time
import urllib.request
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
import yaml
from confluent_kafka.admin import AdminClient
from prometheus_client.parser import text_string_to_metric_families

from tests.integration.daemon_process import current_lsn, logged, wait_confirmed
from tests.integration.pipeline import pg_pipeline, running, wait_until
from tests.integration.sink_support import (
    SinkProcess,
    end_positions,
    stored_positions,
    table_digest,
    wait_applied,
)
from tests.integration.test_sink_reliability import AUDIT, ITEMS, PARTITIONS

ROWS = 40_000
# A killed worker's successor (or a restarted daemon's) takes the same static member's
# place in the group: well under the 10 s session timeout a new member would wait for.
RECOVERY_BOUND_S = 5.0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _children(pid: int) -> list[int]:
    """The daemon's sink worker processes (multiprocessing also runs a resource tracker)."""
    path = Path(f"/proc/{pid}/task/{pid}/children")
    children = [int(child) for child in path.read_text().split()] if path.exists() else []
    return [child for child in children if b"spawn_main" in _cmdline(child)]


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""  # gone


def _metrics(port: int) -> dict[str, float]:
    """Every sample of /metrics by its name and labels."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        text = response.read().decode()
    return {
        f"{s.name}{dict(sorted(s.labels.items()))}": s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def _rows_applied(samples: dict[str, float]) -> float:
    return sum(v for k, v in samples.items() if k.startswith("cdc_sink_rows_applied_total"))


def _assignments(sink: SinkProcess) -> dict[int, int]:
    """Partitions each worker holds, from its last `partitions_assigned` line."""
    return {
        e["worker"]: e["count"] for e in sink.log_events() if e["event"] == "partitions_assigned"
    }


def test_two_workers_share_partitions_and_survive_kill_9(
    tmp_path: Path, pg_dsn: str, pg_target_dsn: str, kafka_bootstrap: str, topic_prefix: str
) -> None:
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute(ITEMS)
        conn.execute(
            "INSERT INTO items SELECT i, 0, md5(i::text) FROM generate_series(1, %s) i", (ROWS,)
        )
    with psycopg.connect(pg_target_dsn, autocommit=True) as conn:
        conn.execute(ITEMS)
        conn.execute(AUDIT)
    settings = pg_pipeline(
        tmp_path, topic_prefix, pg_dsn, kafka_bootstrap, ["public.items"], heartbeat_interval_s=1
    )
    topic = f"{topic_prefix}.public.items"
    # the backlog: the snapshot, then updates and deletes streamed
    with running(settings, "source"), psycopg.connect(pg_dsn, autocommit=True) as conn:
        streaming = "SELECT 1 FROM pg_replication_slots WHERE slot_name = %s AND active"
        assert wait_until(lambda: conn.execute(streaming, (topic_prefix,)).fetchone(), timeout=60)
        conn.execute("UPDATE items SET counter = 1, payload = md5(payload) WHERE id % 3 = 0")
        conn.execute("DELETE FROM items WHERE id % 7 = 0")
        wait_confirmed(pg_dsn, topic_prefix, current_lsn(conn), 120)
    ends = end_positions(kafka_bootstrap, [topic], PARTITIONS)

    config = tmp_path / f"{topic_prefix}.yaml"
    raw = yaml.safe_load(config.read_text())
    port = _free_port()
    raw |= {
        "target": {"type": "postgres", "dsn": pg_target_dsn},
        "sink": {"workers": 2},
        "metrics": {"listen": f"127.0.0.1:{port}"},
    }
    config.write_text(yaml.safe_dump(raw))
    sink = SinkProcess(config, tmp_path / "sink.log")
    try:
        assert wait_until(lambda: len(_children(sink.proc.pid)) == 2, timeout=30)
        # the first worker may apply a while alone before the second joins
        assert wait_until(lambda: _assignments(sink) == {0: 1, 1: 1}, timeout=60, every=0.02), (
            f"each worker holds one partition: {_assignments(sink)}\n{sink.log_tail()}"
        )
        victim = _children(sink.proc.pid)[0]
        assert wait_until(lambda: _rows_applied(_metrics(port)) > 0, timeout=10)
        before_kill = _rows_applied(_metrics(port))
        os.kill(victim, signal.SIGKILL)
        assert wait_until(lambda: len(set(_children(sink.proc.pid)) - {victim}) == 2, timeout=30), (
            sink.log_tail()
        )
        wait_applied(pg_target_dsn, topic_prefix, ends, timeout=180)
        sink.assert_alive()
        # caught up and idle: no lag, however old the last change applied was
        idle = wait_until(lambda: _metrics(port)["cdc_sink_lag_seconds{}"] == 0, timeout=10)
        assert idle, _metrics(port)["cdc_sink_lag_seconds{}"]
        samples = _metrics(port)
    finally:
        workers = _children(sink.proc.pid)
        started = time.monotonic()
        code = sink.stop()
    assert code == 0, sink.log_tail()
    assert time.monotonic() - started < 30
    assert not any(Path(f"/proc/{pid}").exists() for pid in workers), "a worker outlived the daemon"

    assert table_digest(pg_target_dsn, "items") == table_digest(pg_dsn, "items")
    with psycopg.connect(pg_target_dsn) as conn:
        assert stored_positions(conn, topic_prefix) == {k: v for k, v in ends.items() if v > 0}
        applied = Counter(conn.execute("SELECT id, counter FROM applied").fetchall())
    # What the killed worker had not committed rolled back and its successor applied
    # it: every row version was written once.
    assert max(applied.values()) == 1
    events = [e["event"] for e in sink.log_events()]
    assert events.count("sink_worker_restarted") == 1, events
    assert samples["cdc_sink_worker_restarts_total{}"] == 1
    # /metrics adds up the workers, and the killed worker's counts stay in the sum:
    # it does not go back (what a worker applied in its last second before the
    # kill may be missing, and the backlog may be all applied by the kill: no `>`)
    assert _rows_applied(samples) >= before_kill > 0


def _sink_config(tmp_path: Path, name: str, target_dsn: str, port: int, **sink: Any) -> Path:
    """The pipeline file pg_pipeline wrote, with a target, `sink:` settings and a metrics port."""
    config = tmp_path / f"{name}.yaml"
    raw = yaml.safe_load(config.read_text())
    raw |= {
        "target": {"type": "postgres", "dsn": target_dsn},
        "sink": {"workers": 2, **sink},
        "metrics": {"listen": f"127.0.0.1:{port}"},
    }
    config.write_text(yaml.safe_dump(raw))
    return config


def _applied_after(
    kill: Callable[[], None], pg_dsn: str, target: psycopg.Connection[Any], ids: range
) -> float:
    """Seconds from `kill()` until rows `ids`, inserted right after it, are all on the target."""
    killed = time.monotonic()
    kill()
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO items SELECT i, 0, 'after the kill'"
            " FROM generate_series(%s::int, %s::int) i",
            (ids.start, ids.stop - 1),
        )
    count = "SELECT count(*) FROM items WHERE id >= %s AND id < %s"
    arrived = wait_until(
        lambda: _one(target.execute(count, (ids.start, ids.stop))) == len(ids),
        timeout=60,
        every=0.05,
    )
    assert arrived, "the rows inserted after the kill never reached the target"
    return time.monotonic() - killed


def _one(cursor: psycopg.Cursor[Any]) -> Any:
    row = cursor.fetchone()
    assert row is not None
    return row[0]


def test_a_killed_worker_or_daemon_applies_again_within_seconds(
    tmp_path: Path, pg_dsn: str, pg_target_dsn: str, kafka_bootstrap: str, topic_prefix: str
) -> None:
    for dsn in (pg_dsn, pg_target_dsn):
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(ITEMS)
    settings = pg_pipeline(
        tmp_path, topic_prefix, pg_dsn, kafka_bootstrap, ["public.items"], heartbeat_interval_s=1
    )
    topic = f"{topic_prefix}.public.items"
    config = _sink_config(tmp_path, topic_prefix, pg_target_dsn, _free_port())
    with (
        running(settings, "source"),
        psycopg.connect(pg_target_dsn, autocommit=True) as target,
    ):
        sink = SinkProcess(config, tmp_path / "sink.log")
        try:
            assert wait_until(lambda: _assignments(sink) == {0: 1, 1: 1}, timeout=60), (
                f"each worker holds one partition: {_assignments(sink)}\n{sink.log_tail()}"
            )
            host = socket.gethostname()
            assert _members(kafka_bootstrap, topic_prefix) == [f"{host}-0", f"{host}-1"]
            # streaming end to end before the kill
            _applied_after(lambda: None, pg_dsn, target, range(1, 21))
            ends = end_positions(kafka_bootstrap, [topic], PARTITIONS)

            victim = _children(sink.proc.pid)[0]
            took = _applied_after(
                lambda: os.kill(victim, signal.SIGKILL), pg_dsn, target, range(100, 120)
            )
            print(f"\nworker killed with -9: rows written after it applied in {took:.2f} s")
            # the rows went to both partitions: the killed worker's as well
            grown = end_positions(kafka_bootstrap, [topic], PARTITIONS)
            assert all(grown[p] > ends[p] for p in ends), (ends, grown)
            assert took < RECOVERY_BOUND_S, sink.log_tail()
            sink.assert_alive()
            events = [e["event"] for e in sink.log_events()]
            assert events.count("sink_worker_restarted") == 1, events

            # The whole daemon and its workers killed at once (the OOM killer taking the
            # container, systemd's SIGKILL of the unit) and started again on this host.
            workers = _children(sink.proc.pid)
            os.kill(sink.proc.pid, signal.SIGSTOP)  # no respawn, no drain in between
            for pid in workers:
                os.kill(pid, signal.SIGKILL)
            sink.kill9()
            killed = time.monotonic()
            sink = SinkProcess(config, tmp_path / "sink-again.log")
            # from its start: how long a Python process takes to start is the host's
            assert wait_until(lambda: logged(sink, "sink_workers_started"), timeout=30, every=0.05)
            started = time.monotonic()
            took = _applied_after(lambda: None, pg_dsn, target, range(200, 220))
            print(
                f"daemon killed with -9 and started again: rows applied {took:.2f} s after"
                f" it started ({started - killed + took:.2f} s after the kill)"
            )
            assert took < RECOVERY_BOUND_S, sink.log_tail()
        finally:
            code = sink.stop()
    assert code == 0, sink.log_tail()
    assert table_digest(pg_target_dsn, "items") == table_digest(pg_dsn, "items")
    # stopped, the static members left the group: `cdc replay` need not wait
    assert _members(kafka_bootstrap, topic_prefix) == []


def _members(bootstrap: str, group: str) -> list[str | None]:
    """The group.instance.id of each member of the consumer group, as Kafka lists them."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    found = admin.describe_consumer_groups([group])[group].result(timeout=30)
    return sorted(m.group_instance_id for m in found.members)


def test_two_daemons_under_one_instance_id_stop_the_older_with_the_fix(
    tmp_path: Path, pg_dsn: str, pg_target_dsn: str, kafka_bootstrap: str, topic_prefix: str
) -> None:
    for dsn in (pg_dsn, pg_target_dsn):
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(ITEMS)
    settings = pg_pipeline(
        tmp_path, topic_prefix, pg_dsn, kafka_bootstrap, ["public.items"], heartbeat_interval_s=1
    )
    first = _sink_config(tmp_path, topic_prefix, pg_target_dsn, _free_port())
    raw = yaml.safe_load(first.read_text())
    raw["metrics"]["listen"] = f"127.0.0.1:{_free_port()}"  # a second daemon needs its own
    second = tmp_path / "second.yaml"
    second.write_text(yaml.safe_dump(raw))
    raw["sink"]["instance_id"] = "second-daemon"
    raw["metrics"]["listen"] = f"127.0.0.1:{_free_port()}"
    distinct = tmp_path / "distinct.yaml"
    distinct.write_text(yaml.safe_dump(raw))
    with (
        running(settings, "source"),
        psycopg.connect(pg_target_dsn, autocommit=True) as target,
    ):
        older = SinkProcess(first, tmp_path / "older.log")
        newer: SinkProcess | None = None
        try:
            assert wait_until(lambda: _assignments(older) == {0: 1, 1: 1}, timeout=60), (
                older.log_tail()
            )
            newer = SinkProcess(second, tmp_path / "newer.log")
            # the newcomer under the same host name takes the members; the older stops,
            # exit 2: a supervisor restarting it would only fence the newer one in turn
            assert older.proc.wait(30) == 2, older.log_tail()
            stopped = [e for e in older.log_events() if e["event"] == "stopped"]
            assert any(
                "Kafka fenced this one" in e["error"] and "sink.instance_id" in e["fix"]
                for e in stopped
            ), older.log_tail()
            _applied_after(lambda: None, pg_dsn, target, range(1, 21))
            newer.assert_alive()

            # with its own sink.instance_id, a second daemon runs beside it
            older = SinkProcess(distinct, tmp_path / "beside.log")
            assert wait_until(lambda: logged(older, "partitions_assigned"), timeout=30), (
                older.log_tail()
            )
            _applied_after(lambda: None, pg_dsn, target, range(100, 120))
            older.assert_alive()
            newer.assert_alive()
        finally:
            codes = [older.stop()] + ([newer.stop()] if newer is not None else [])
    assert codes == [0, 0], (older.log_tail(), newer.log_tail() if newer else "")
