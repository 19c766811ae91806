"""`sink.workers: 2`: two sink processes share the partitions; one killed with
-9 is started again and the target still ends equal to the source."""

from __future__ import annotations

import os
import signal
import socket
import time
import urllib.request
from collections import Counter
from pathlib import Path

import psycopg
import yaml
from prometheus_client.parser import text_string_to_metric_families

from tests.integration.daemon_process import current_lsn, wait_confirmed
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
