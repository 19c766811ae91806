"""Cut-over, rollback and reverse replication on the real servers, under a write load.

PostgreSQL to PostgreSQL and MariaDB to PostgreSQL: the pipeline runs, `cdc cutover`
(the real command) fences the source and reports the window, the target equals the
source, writes on the new side flow back through the reverse pipeline, and
`cdc rollback` gives the writes back to the old side, which holds all of them.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pymysql
from confluent_kafka.admin import AdminClient

from cdc.migrate.positions import published
from cdc.migrate.verify import verify
from cdc.settings import Settings
from cdc.settings_load import load_settings
from cdc.topics import table_topic
from tests.integration.conftest import mysql_connect
from tests.integration.pipeline import TopicReader, running, wait_until, write_config

ROOT = Path(__file__).resolve().parents[2]
CDC = Path(sys.executable).parent / "cdc"
PG_TABLE = "CREATE TABLE {} (id serial PRIMARY KEY, v text NOT NULL, n integer NOT NULL)"
MY_TABLE = (
    "CREATE TABLE items"
    " (id INT AUTO_INCREMENT PRIMARY KEY, v VARCHAR(100) NOT NULL, n INT NOT NULL)"
)
Rows = list[tuple[Any, ...]]


def cdc(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(CDC), *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def config(
    name: str, source: dict[str, Any], target: dict[str, Any], bootstrap: str, **cutover: Any
) -> dict[str, Any]:
    return {
        "name": name,
        "source": source,
        "target": target,
        "kafka": {"bootstrap_servers": bootstrap, "partitions": 2},
        "metrics": {"listen": "127.0.0.1:0"},
        "snapshot": {"chunk_rows": 1000},
        "cutover": {"max_lag_seconds": 30, "fence": {"timeout_s": 90}, **cutover},
    }


class WriteLoad:
    """Inserts and updates on one side until stopped; counts what was refused."""

    def __init__(self, write: Callable[[int], None]) -> None:
        self._write = write
        self.stop = threading.Event()
        self.paused = threading.Event()
        self.done = 0
        self.refused = 0
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> WriteLoad:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop.set()
        self._thread.join(30)

    def _run(self) -> None:
        n = 0
        while not self.stop.is_set():
            if self.paused.is_set():
                self.stop.wait(0.05)
                continue
            n += 1
            try:
                self._write(n)
                self.done += 1
            except (psycopg.Error, pymysql.Error):
                self.refused += 1
                self.stop.wait(0.05)
            self.stop.wait(0.01)


def pg_writer(dsn: str) -> Callable[[int], None]:
    """A writer that reconnects when its session was ended (the fence ends sessions)."""
    state: dict[str, psycopg.Connection[Any]] = {}

    def write(n: int) -> None:
        conn = state.get("conn")
        if conn is None or conn.closed:
            conn = state["conn"] = psycopg.connect(dsn, autocommit=True)
        try:
            with conn.transaction():
                conn.execute("INSERT INTO items (v, n) VALUES (%s, %s)", (f"row {n}", n))
                conn.execute("UPDATE items SET n = n + 1 WHERE id = %s", (n % 50 + 1,))
        except psycopg.OperationalError:
            conn.close()
            raise

    return write


def pg_rows(dsn: str, table: str = "items") -> Rows:
    with psycopg.connect(dsn) as conn:
        return conn.execute(f"SELECT id, v, n FROM {table} ORDER BY id").fetchall()


def my_rows(dsn: str) -> Rows:
    with mysql_connect(dsn) as conn, conn.cursor() as cur:
        cur.execute("SELECT id, v, n FROM items ORDER BY id")
        return [tuple(row) for row in cur.fetchall()]


def read_only_refused(write: Callable[[], None]) -> bool:
    try:
        write()
    except (psycopg.errors.ReadOnlySqlTransaction, pymysql.err.MySQLError) as exc:
        return "read" in str(exc).lower()
    return False


def pg_execute(dsn: str, statement: str, *params: Any) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(statement.encode(), params)


def pg_insert(dsn: str, v: str) -> None:
    pg_execute(dsn, "INSERT INTO items (v, n) VALUES (%s, 0)", v)


def delete_topics(bootstrap: str, prefix: str) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    topics = [t for t in admin.list_topics(timeout=10).topics if t.startswith(prefix + ".")]
    if topics:
        for future in admin.delete_topics(topics, operation_timeout=30).values():
            future.result()


@contextmanager
def reverse_cleanup(settings: Settings, bootstrap: str, target_dsn: str) -> Iterator[None]:
    """Drop what the reverse pipeline leaves: its slot on the target, its topics."""
    try:
        yield
    finally:
        name = settings.cutover.reverse_name
        with psycopg.connect(target_dsn, autocommit=True) as conn:
            conn.execute(
                "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots"
                " WHERE slot_name = %s AND NOT active",
                (name,),
            )
        delete_topics(bootstrap, name)


def cut_over_and_back(
    settings: Settings,
    path: Path,
    source_rows: Callable[[], Rows],
    source_refuses: Callable[[], bool],
    source_insert: Callable[[str], None],
    target_dsn: str,
    load: WriteLoad,
) -> None:
    """What both paths share, from a running pipeline under `load` to the rollback."""
    target_rows = lambda: pg_rows(target_dsn, target_table(settings))  # noqa: E731
    assert wait_until(lambda: load.done > 50 and len(target_rows()) > 50, timeout=120)
    # The verify gate reads the last run: a quiet moment makes it deterministic here
    # (verify under a live load is tested with verify itself).
    load.paused.set()
    assert wait_until(lambda: source_rows() == target_rows(), timeout=120)
    assert verify(settings).equal
    load.paused.clear()
    assert wait_until(lambda: source_rows() != target_rows() or load.done > 300, timeout=30)

    result = cdc("cutover", "-c", str(path), "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["outcome"] == "done"
    assert 0 < report["window_s"] < 120
    assert "fenced" in report["steps"] and "drained" in report["steps"]
    refused_before = load.refused
    assert wait_until(lambda: load.refused > refused_before, timeout=30)  # the load is refused
    assert source_refuses()
    load.stop.set()
    assert source_rows() == target_rows()  # nothing written on the source is missing

    shown = cdc("status", "-c", str(path), "--json")
    assert shown.returncode == 0, shown.stderr
    forward, backward = json.loads(shown.stdout)
    assert forward["phase"] == "cut over" and "done" in forward["cutover"]
    assert forward["last_verify"][1] is True and forward["dead_letters"] == 0
    assert [t["lag_messages"] for t in forward["tables"]] == [0]
    assert backward["name"] == settings.cutover.reverse_name
    assert "cut over" in cdc("status", "-c", str(path)).stdout

    again = cdc("cutover", "-c", str(path), "--json")  # a finished cut-over: a no-op
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["outcome"] == "already_done"

    reverse = load_settings(report["reverse_config"])
    assert reverse.snapshot.mode == "never"
    highest = max(row[0] for row in source_rows())
    with running(reverse, "all"), psycopg.connect(target_dsn, autocommit=True) as conn:
        table = target_table(settings)
        new_ids = [
            row[0]
            for row in conn.execute(
                f"INSERT INTO {table} (v, n) SELECT 'new side ' || g, g"
                " FROM generate_series(1, 40) g RETURNING id"
            ).fetchall()
        ]
        assert min(new_ids) > highest  # the sequence was moved above the source's
        conn.execute(f"UPDATE {table} SET v = 'changed on the new side' WHERE id <= 10")
        conn.execute(f"DELETE FROM {table} WHERE id = %s", (new_ids[0],))
        assert wait_until(lambda: source_rows() == target_rows(), timeout=120)

        back = cdc("rollback", "-c", str(path), "--json")
        assert back.returncode == 0, back.stderr
        assert json.loads(back.stdout)["outcome"] == "done"
    rows = source_rows()
    assert {r[0] for r in rows} >= set(new_ids[1:])
    assert all(r[1] == "changed on the new side" for r in rows if r[0] <= 10)
    assert new_ids[0] not in {r[0] for r in rows}
    source_insert("after the rollback")  # the old side takes writes again, with fresh ids
    assert max(r[0] for r in source_rows()) > max(new_ids)
    assert cdc("rollback", "-c", str(path)).returncode == 0  # again: nothing to do


def target_table(settings: Settings) -> str:
    if settings.source.type == "postgres":
        return "public.items"
    database = urlsplit(settings.source.dsn.get_secret_value()).path.strip("/")
    return f'"{database}".items'


def test_pg_to_pg_cutover_reverse_and_rollback(
    tmp_path: Path, pg_dsn: str, pg_target_dsn: str, kafka_bootstrap: str, topic_prefix: str
) -> None:
    for dsn in (pg_dsn, pg_target_dsn):
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(PG_TABLE.format("items"))
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO items (v, n) SELECT 'seed ' || g, g FROM generate_series(1, 500) g"
        )
    path = tmp_path / "pipeline.yaml"
    settings = write_config(
        path,
        config(
            topic_prefix,
            {"type": "postgres", "dsn": pg_dsn, "tables": ["public.items"]},
            {"type": "postgres", "dsn": pg_target_dsn},
            kafka_bootstrap,
            reverse=True,
        ),
    )
    with (
        reverse_cleanup(settings, kafka_bootstrap, pg_target_dsn),
        running(settings, "all"),
        WriteLoad(pg_writer(pg_dsn)) as load,
    ):
        cut_over_and_back(
            settings,
            path,
            lambda: pg_rows(pg_dsn),
            lambda: read_only_refused(lambda: pg_insert(pg_dsn, "fenced")),
            lambda v: pg_insert(pg_dsn, v),
            pg_target_dsn,
            load,
        )


@contextmanager
def mysql_app_user(admin_dsn: str, database: str) -> Iterator[str]:
    """A DSN of an application account (no READ ONLY ADMIN, so read_only holds it)."""
    user = f"app_{database[-12:]}"
    with mysql_connect(admin_dsn) as conn, conn.cursor() as cur:
        cur.execute(f"CREATE USER '{user}'@'127.0.0.1' IDENTIFIED BY 'app-password'")
        cur.execute(f"GRANT ALL ON `{database}`.* TO '{user}'@'127.0.0.1'")
    parts = urlsplit(admin_dsn)
    netloc = f"{user}:app-password@{parts.hostname}:{parts.port}"
    try:
        yield urlunsplit(parts._replace(netloc=netloc))
    finally:
        with mysql_connect(admin_dsn) as conn, conn.cursor() as cur:
            cur.execute("SET GLOBAL read_only = OFF")  # never leave the shared server fenced
            cur.execute(f"DROP USER '{user}'@'127.0.0.1'")


def my_writer(dsn: str) -> Callable[[int], None]:
    def write(n: int) -> None:
        with mysql_connect(dsn) as conn, conn.cursor() as cur:
            cur.execute("INSERT INTO items (v, n) VALUES (%s, %s)", (f"row {n}", n))
            cur.execute("UPDATE items SET n = n + 1 WHERE id = %s", (n % 50 + 1,))

    return write


def my_execute(dsn: str, statement: str, *params: Any) -> None:
    with mysql_connect(dsn) as conn, conn.cursor() as cur:
        cur.execute(statement, params)


def my_insert(dsn: str, v: str) -> None:
    my_execute(dsn, "INSERT INTO items (v, n) VALUES (%s, 0)", v)


def test_mariadb_to_pg_cutover_reverse_and_rollback(
    tmp_path: Path, mysql_dsn: str, pg_target_dsn: str, kafka_bootstrap: str, topic_prefix: str
) -> None:
    database = urlsplit(mysql_dsn).path.strip("/")
    with mysql_connect(mysql_dsn) as conn, conn.cursor() as cur:
        cur.execute(MY_TABLE)
        cur.executemany(
            "INSERT INTO items (v, n) VALUES (%s, %s)", [(f"seed {i}", i) for i in range(500)]
        )
    with psycopg.connect(pg_target_dsn, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{database}"')
        conn.execute(PG_TABLE.format(f'"{database}".items'))
    path = tmp_path / "pipeline.yaml"
    settings = write_config(
        path,
        config(
            topic_prefix,
            {"type": "mysql", "dsn": mysql_dsn, "tables": [f"{database}.items"]},
            {"type": "postgres", "dsn": pg_target_dsn},
            kafka_bootstrap,
            reverse=True,
        ),
    )
    with (
        mysql_app_user(mysql_dsn, database) as app_dsn,
        reverse_cleanup(settings, kafka_bootstrap, pg_target_dsn),
        running(settings, "all"),
        WriteLoad(my_writer(app_dsn)) as load,
    ):
        cut_over_and_back(
            settings,
            path,
            lambda: my_rows(mysql_dsn),
            lambda: read_only_refused(lambda: my_insert(app_dsn, "fenced")),
            lambda v: my_insert(app_dsn, v),
            pg_target_dsn,
            load,
        )


def test_lag_gate_fails_with_the_sink_stopped(
    tmp_path: Path, pg_dsn: str, pg_target_dsn: str, kafka_bootstrap: str, topic_prefix: str
) -> None:
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute(PG_TABLE.format("items"))
    path = tmp_path / "pipeline.yaml"
    settings = write_config(
        path,
        config(
            topic_prefix,
            {"type": "postgres", "dsn": pg_dsn, "tables": ["public.items"]},
            {"type": "postgres", "dsn": pg_target_dsn, "create_tables": True},
            kafka_bootstrap,
            max_lag_seconds=1,
            require_verify=False,
        ),
    )
    with running(settings, "source"), WriteLoad(pg_writer(pg_dsn)) as load:
        reader = TopicReader(kafka_bootstrap, table_topic(topic_prefix, "public", "items"))
        assert len(reader.read_until(20)) >= 20  # changes reach Kafka; no sink applies them
        reader.close()
        time.sleep(2)  # the oldest unapplied change is now older than max_lag_seconds
        done = load.done
        result = cdc("cutover", "-c", str(path))
        assert result.returncode == 1, result.stderr
        assert "gates failed: lag:" in result.stderr
        assert "gate lag" in result.stdout and "FAILED" in result.stdout
        assert wait_until(lambda: load.done > done + 10, timeout=30)  # the source was not fenced
        as_json = cdc("cutover", "-c", str(path), "--json")
    assert as_json.returncode == 1
    report = json.loads(as_json.stdout)
    assert report["outcome"] == "gate_failed"
    assert [g["name"] for g in report["gates"] if not g["passed"]] == ["lag"]


def test_changes_the_sink_applied_are_not_captured_back_pg(
    tmp_path: Path, pg_dsn: str, pg_target_dsn: str, kafka_bootstrap: str, topic_prefix: str
) -> None:
    """pg_target_dsn is both the sink's target and another pipeline's source."""
    for dsn in (pg_dsn, pg_target_dsn):
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(PG_TABLE.format("items"))
    into_target = write_config(
        tmp_path / "a.yaml",
        config(
            topic_prefix,
            {"type": "postgres", "dsn": pg_dsn, "tables": ["public.items"]},
            {"type": "postgres", "dsn": pg_target_dsn},
            kafka_bootstrap,
        ),
    )
    from_target = write_config(
        tmp_path / "b.yaml",
        {
            **config(
                f"{topic_prefix}_back",
                {"type": "postgres", "dsn": pg_target_dsn, "tables": ["public.items"]},
                {"type": "postgres", "dsn": pg_dsn},
                kafka_bootstrap,
            ),
            "target": None,
            "snapshot": {"mode": "never"},
        },
    )
    try:
        assert_not_captured_back(
            into_target,
            from_target,
            kafka_bootstrap,
            lambda: pg_insert(pg_dsn, "through the sink"),
            lambda: pg_execute(pg_target_dsn, "INSERT INTO items VALUES (2, 'by hand', 0)"),
            lambda: len(pg_rows(pg_target_dsn)) == 1,
            "public",
        )
    finally:
        delete_topics(kafka_bootstrap, f"{topic_prefix}_back")


def test_changes_the_sink_applied_are_not_captured_back_mysql(
    tmp_path: Path, pg_dsn: str, mysql_dsn: str, kafka_bootstrap: str, topic_prefix: str
) -> None:
    """mysql_dsn is both the sink's target and another pipeline's source."""
    database = urlsplit(mysql_dsn).path.strip("/")
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute(PG_TABLE.format("items"))
    with mysql_connect(mysql_dsn) as conn, conn.cursor() as cur:
        cur.execute(MY_TABLE)
    into_target = write_config(
        tmp_path / "a.yaml",
        config(
            topic_prefix,
            {"type": "postgres", "dsn": pg_dsn, "tables": ["public.items"]},
            {"type": "mysql", "dsn": mysql_dsn},
            kafka_bootstrap,
        ),
    )
    from_target = write_config(
        tmp_path / "b.yaml",
        {
            **config(
                f"{topic_prefix}_back",
                {"type": "mysql", "dsn": mysql_dsn, "tables": [f"{database}.items"]},
                {"type": "postgres", "dsn": pg_dsn},
                kafka_bootstrap,
            ),
            "target": None,
            "snapshot": {"mode": "never"},
        },
    )
    try:
        assert_not_captured_back(
            into_target,
            from_target,
            kafka_bootstrap,
            lambda: pg_insert(pg_dsn, "through the sink"),
            lambda: my_execute(mysql_dsn, "INSERT INTO items VALUES (2, 'by hand', 0)"),
            lambda: len(my_rows(mysql_dsn)) == 1,
            database,
        )
    finally:
        delete_topics(kafka_bootstrap, f"{topic_prefix}_back")


def assert_not_captured_back(
    into_target: Settings,
    from_target: Settings,
    bootstrap: str,
    write_through_sink: Callable[[], None],
    write_by_hand: Callable[[], None],
    sink_applied: Callable[[], bool],
    schema: str,
) -> None:
    with running(from_target, "source"), running(into_target, "all"):
        # streaming from here on: whatever the sink writes next would be captured
        assert wait_until(lambda: published(from_target) is not None, timeout=60)
        write_through_sink()  # id 1 on the target, applied by the sink
        assert wait_until(sink_applied, timeout=90)
        write_by_hand()  # id 2 on the target, by an application
        topic = table_topic(from_target.kafka.topic_prefix, schema, "items")
        reader = TopicReader(bootstrap, topic)
        seen = reader.read_keys("id", {2}, timeout=90)
        reader.read_until(10, timeout=3)  # whatever else would have come
        seen |= {json.loads(m.key())["id"] for m in reader.messages if m.key()}
        reader.close()
    assert 2 in seen  # the hand-written change is captured
    assert 1 not in seen  # the sink's is not: no loop
