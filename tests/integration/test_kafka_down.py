"""Kafka not answering when `cdc run` starts: one clear line per try, backed
off, and SIGTERM obeyed at once, not a stream of librdkafka errors and a
traceback. Kafka killed and started again under running pipelines: changes
flow again within seconds of the broker's return."""

from __future__ import annotations

import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import orjson
import psycopg
import yaml

from tests.integration.conftest import (
    SERVICES,
    delete_topics,
    my_execute,
    pg_execute,
    services,
)
from tests.integration.daemon_process import DaemonProcess, cdc_command, write_pg_config
from tests.integration.kafka_serving import Serving
from tests.integration.mysql_support import write_mysql_config
from tests.integration.pipeline import pg_pipeline, wait_until

# From the broker accepting connections again to a change on the target: the
# clients' reconnect backoffs and the retry loop's waits must all stay short.
RECOVERY_BOUND_S = 5.0


def test_unreachable_kafka_at_start_is_one_line_per_try_and_sigterm_stops_it(
    tmp_path: Path, pg_dsn: str, topic_prefix: str
) -> None:
    with socket.socket() as closed:  # a port nothing listens on
        closed.bind(("127.0.0.1", 0))
        nowhere = f"127.0.0.1:{closed.getsockname()[1]}"
    pg_pipeline(tmp_path, topic_prefix, pg_dsn, nowhere, ["public.t"])
    config = tmp_path / f"{topic_prefix}.yaml"
    log = tmp_path / "run.log"
    with log.open("wb") as stderr:
        proc = subprocess.Popen([*cdc_command(), "run", "-c", str(config)], stderr=stderr)
        deadline = time.monotonic() + 60
        while b"kafka_unreachable" not in log.read_bytes() and time.monotonic() < deadline:
            time.sleep(0.2)
        proc.send_signal(signal.SIGTERM)
        asked = time.monotonic()
        try:
            status = proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise AssertionError(f"SIGTERM ignored for 30 s:\n{log.read_text()[-3000:]}") from None
        took = time.monotonic() - asked
    text = log.read_bytes()
    lines = text.splitlines()
    events = [orjson.loads(line)["event"] for line in lines if line.startswith(b"{")]
    assert "kafka_unreachable" in events, text[-2000:]
    assert status == 0 and took < 5, (status, took)
    # cdc's own lines only: librdkafka's connection errors stay quiet meanwhile
    assert len(lines) == len(events) <= 5, text[-2000:]
    assert b"Traceback" not in text


def _accepts(address: str) -> bool:
    """Whether the broker listens. A connection to a port of the ephemeral range that
    nothing listens on can meet itself (TCP simultaneous open): that is no broker."""
    host, port = address.rsplit(":", 1)
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex((host, int(port))) == 0 and sock.getsockname() != sock.getpeername()


def test_after_kafka_is_killed_and_restarted_both_pipelines_deliver_within_seconds(
    tmp_path: Path,
    pg_dsn: str,
    mysql_dsn: str,
    pg_target_dsn: str,
    kafka_bootstrap: str,
    topic_prefix: str,
    dev_env: dict[str, str],
) -> None:
    database = urlsplit(mysql_dsn).path.strip("/")
    pg_execute(pg_dsn, "CREATE TABLE items (id int PRIMARY KEY, v int)")
    my_execute(mysql_dsn, "CREATE TABLE items (id INT PRIMARY KEY, v INT)")
    target = {"type": "postgres", "dsn": pg_target_dsn, "create_tables": True}
    pg_config = write_pg_config(
        tmp_path / "pg.yaml", topic_prefix, pg_dsn, kafka_bootstrap, ["public.items"], target=target
    )
    # its own prefix: the other pipeline's sink reads every topic under its prefix
    my_name = f"{topic_prefix}_my"
    my_config = write_mysql_config(
        tmp_path / "my.yaml", my_name, mysql_dsn, kafka_bootstrap, [f"{database}.items"]
    )
    raw = yaml.safe_load(my_config.read_text())
    my_config.write_text(yaml.safe_dump({**raw, "target": target}))
    tables = {"PostgreSQL": "public.items", "MariaDB": f'"{database}".items'}

    def insert(row: int) -> None:
        pg_execute(pg_dsn, "INSERT INTO items VALUES (%s, 0)", row)
        my_execute(mysql_dsn, "INSERT INTO items VALUES (%s, 0)", row)

    daemons = [
        DaemonProcess(pg_config, tmp_path / "pg.log", role="all"),
        DaemonProcess(my_config, tmp_path / "my.log", role="all"),
    ]
    try:
        with psycopg.connect(pg_target_dsn, autocommit=True) as conn:
            insert(1)
            for table in tables.values():
                assert wait_until(
                    lambda t=table: _try_arrived(conn, t, {1}), timeout=90, every=0.2
                ), [d.log_tail() for d in daemons]

            broker = Path(dev_env["CDC_DEV_DIR"], "kafka", "kafka.pid").read_text().strip()
            services("kill", "kafka")
            # gone, not a zombie yet to be reaped, which `start` would take for a running broker
            assert wait_until(lambda: not Path("/proc", broker).exists(), timeout=30, every=0.05)
            assert not _accepts(kafka_bootstrap)
            insert(2)  # written while the broker is gone: it waits in the sources
            starting = subprocess.Popen(["bash", str(SERVICES), "start", "kafka"])
            try:
                assert wait_until(lambda: _accepts(kafka_bootstrap), timeout=120, every=0.05)
                back = time.monotonic()
                insert(3)  # and one written once it is back
                topics = [f"{topic_prefix}.public.items", f"{my_name}.{database}.items"]
                serving = Serving(kafka_bootstrap, topics, [topic_prefix, my_name])
                took: dict[str, float] = {}
                while len(took) < len(tables) and time.monotonic() < back + 60:
                    for source, table in tables.items():
                        if source not in took and _try_arrived(conn, table, {2, 3}):
                            took[source] = time.monotonic()
                    time.sleep(0.05)
                serving.join(60)
            finally:
                _started(starting, dev_env["CDC_DEV_DIR"])
        for daemon in daemons:
            daemon.assert_alive()
        assert set(took) == set(tables), (took, [d.log_tail() for d in daemons])
        assert serving.at is not None, "the broker never served the pipelines again"
        after = {source: at - serving.at for source, at in took.items()}
        print(
            f"\nKafka killed -9 and started again: it served the pipelines' partitions and"
            f" groups {serving.at - back:.2f} s after it accepted connections; rows on the"
            " target "
            + ", ".join(
                f"{source} -> PostgreSQL {s:.2f} s after that ({took[source] - back:.2f} s"
                " after it accepted connections)"
                for source, s in after.items()
            )
        )
        # From the moment the broker serves again: how long it takes to load its logs
        # after a kill is the broker's (here 2 to 5 s), not the pipeline's.
        assert all(s < RECOVERY_BOUND_S for s in after.values()), (
            after,
            [d.log_tail() for d in daemons],
        )
    finally:
        codes = [daemon.stop() for daemon in daemons]
        delete_topics(kafka_bootstrap, my_name)
    assert codes == [0, 0], [d.log_tail() for d in daemons]
    for daemon in daemons:
        dead = [e for e in daemon.log_events() if e["event"] == "dead_lettered"]
        assert not dead, dead


def _try_arrived(target: psycopg.Connection[Any], table: str, ids: set[int]) -> bool:
    """Whether rows `ids` are in `table` (the sink creates it with its first batch)."""
    try:
        return {r[0] for r in target.execute(f"SELECT id FROM {table}")} >= ids
    except psycopg.errors.UndefinedTable:
        return False


def _started(starting: subprocess.Popen[bytes], dev_dir: str) -> None:
    """Wait for `dev/services.sh start kafka`; a start that failed is tried once more,
    so the broker the other tests share is not left down."""
    if starting.wait(180) == 0:
        return
    log = Path(dev_dir, "kafka", "kafka.log").read_text()[-3000:]
    services("start", "kafka")
    raise AssertionError(f"Kafka did not start again:\n{log}")
