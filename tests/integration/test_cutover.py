"""Cut-over, rollback and reverse replication on the real servers, under a write load.

PostgreSQL to PostgreSQL, MariaDB to PostgreSQL and PostgreSQL to MariaDB: the
pipeline runs, `cdc cutover` (the real command) fences the source and reports the
window, the target equals the source, writes on the new side flow back through the
reverse pipeline, `cdc rollback` gives the writes back to the old side, which holds
all of them, and the reverse pipeline's slot does not outlive it.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pymysql

from cdc.app.engines import engine_for
from cdc.engine.cutover import Marker
from cdc.migrate.verify.run import verify
from cdc.settings import Settings
from cdc.settings_load import load_settings
from cdc.topics import table_topic
from tests.integration.conftest import delete_topics, my_execute, mysql_connect, pg_execute
from tests.integration.pipeline import TopicReader, cdc, running, wait_until, write_config

PG_TABLE = "CREATE TABLE {} (id serial PRIMARY KEY, v text NOT NULL, n integer NOT NULL)"
MY_TABLE = (
    "CREATE TABLE items"
    " (id INT AUTO_INCREMENT PRIMARY KEY, v VARCHAR(100) NOT NULL, n INT NOT NULL)"
)
Rows = list[tuple[Any, ...]]


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


def pg_insert(dsn: str, v: str) -> None:
    pg_execute(dsn, "INSERT INTO items (v, n) VALUES (%s, 0)", v)


def published(settings: Settings) -> Marker | None:
    """How far the pipeline's source has put everything into Kafka."""
    read = engine_for(settings.source).published(settings.kafka)
    try:
        return read()
    finally:
        read.close()


@contextmanager
def reverse_cleanup(settings: Settings, bootstrap: str, target_dsn: str) -> Iterator[None]:
    """Drop what the reverse pipeline leaves if a test stops half way: its slot on a
    PostgreSQL target, its topics."""
    try:
        yield
    finally:
        name = settings.cutover.reverse_name
        if settings.target is not None and settings.target.type == "postgres":
            pg_execute(
                target_dsn,
                "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots"
                " WHERE slot_name = %s AND NOT active",
                name,
            )
        delete_topics(bootstrap, name)


def reverse_slot_exists(settings: Settings) -> bool:
    """Whether the reverse pipeline's slot (or publication) is still on the target."""
    assert settings.target is not None
    with psycopg.connect(settings.target.dsn.get_secret_value()) as conn:
        found = conn.execute(
            "SELECT 1 FROM pg_replication_slots WHERE slot_name = %s"
            " UNION ALL SELECT 1 FROM pg_publication WHERE pubname = %s",
            (settings.cutover.reverse_name, settings.cutover.reverse_name),
        ).fetchall()
    return bool(found)


def pg_new_side_writes(dsn: str, table: str) -> list[int]:
    """40 inserts, ids up to 10 updated, the first new row deleted: the new ids."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        new_ids = [
            row[0]
            for row in conn.execute(
                f"INSERT INTO {table} (v, n) SELECT 'new side ' || g, g"
                " FROM generate_series(1, 40) g RETURNING id"
            ).fetchall()
        ]
        conn.execute(f"UPDATE {table} SET v = 'changed on the new side' WHERE id <= 10")
        conn.execute(f"DELETE FROM {table} WHERE id = %s", (new_ids[0],))
    return new_ids


def my_new_side_writes(dsn: str) -> list[int]:
    """As `pg_new_side_writes`, on MySQL/MariaDB."""
    new_ids = []
    with mysql_connect(dsn) as conn, conn.cursor() as cur:
        for g in range(1, 41):
            cur.execute("INSERT INTO items (v, n) VALUES (%s, %s)", (f"new side {g}", g))
            new_ids.append(cur.lastrowid)
        cur.execute("UPDATE items SET v = 'changed on the new side' WHERE id <= 10")
        cur.execute("DELETE FROM items WHERE id = %s", (new_ids[0],))
    return new_ids


@dataclass(frozen=True)
class OldSide:
    """The pipeline's source as the test's application uses it."""

    config: dict[str, Any]  # the pipeline file's source section
    rows: Callable[[], Rows]
    insert: Callable[[str], None]  # one row with this v
    writer: Callable[[int], None]  # the write load's step


@dataclass(frozen=True)
class NewSide:
    """The pipeline's target, where the application moves."""

    config: dict[str, Any]  # the pipeline file's target section
    dsn: str
    rows: Callable[[], Rows]
    writes: Callable[[], list[int]]  # as `pg_new_side_writes`


def cut_over_and_back(
    tmp_path: Path, name: str, bootstrap: str, old: OldSide, new: NewSide
) -> None:
    """What every path shares: the pipeline runs under a write load on the old side, is
    cut over, the new side's writes flow back, and the rollback gives the writes back."""
    path = tmp_path / "pipeline.yaml"
    settings = write_config(path, config(name, old.config, new.config, bootstrap, reverse=True))
    with (
        reverse_cleanup(settings, bootstrap, new.dsn),
        running(settings, "all"),
        WriteLoad(old.writer) as load,
    ):
        check_cut_over_and_back(settings, path, old, new, load)


def check_cut_over_and_back(
    settings: Settings, path: Path, old: OldSide, new: NewSide, load: WriteLoad
) -> None:
    assert wait_until(lambda: load.done > 50 and len(new.rows()) > 50, timeout=120)
    # The verify gate reads the last run: a quiet moment makes it deterministic here
    # (verify under a live load is tested with verify itself).
    load.paused.set()
    assert wait_until(lambda: old.rows() == new.rows(), timeout=120)
    assert verify(settings, engine_for).equal
    load.paused.clear()
    assert wait_until(lambda: old.rows() != new.rows() or load.done > 300, timeout=30)

    result = cdc("cutover", "-c", str(path), "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["outcome"] == "done"
    assert 0 < report["window_s"] < 120
    assert "fenced" in report["steps"] and "drained" in report["steps"]
    refused_before = load.refused
    assert wait_until(lambda: load.refused > refused_before, timeout=30)  # the load is refused
    assert read_only_refused(lambda: old.insert("fenced"))
    load.stop.set()
    assert old.rows() == new.rows()  # nothing written on the source is missing

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
    slot_on_target = reverse.source.type == "postgres"
    highest = max(row[0] for row in old.rows())
    with running(reverse, "all"):
        new_ids = new.writes()
        assert min(new_ids) > highest  # the counter was moved above the source's
        assert wait_until(lambda: old.rows() == new.rows(), timeout=120)

        back = cdc("rollback", "-c", str(path), "--json")
        assert back.returncode == 0, back.stderr
        rolled = json.loads(back.stdout)
        assert rolled["outcome"] == "done"
        if slot_on_target:  # still read by the running reverse pipeline: left, and said so
            assert any("still reads its slot" in w for w in rolled["warnings"]), rolled
            assert reverse_slot_exists(settings)
        else:
            assert "reverse_retired" in rolled["steps"]
    rows = old.rows()
    assert {r[0] for r in rows} >= set(new_ids[1:])
    assert all(r[1] == "changed on the new side" for r in rows if r[0] <= 10)
    assert new_ids[0] not in {r[0] for r in rows}
    old.insert("after the rollback")  # the old side takes writes again, with fresh ids
    assert max(r[0] for r in old.rows()) > max(new_ids)
    # the target stays fenced after the rollback: verify still runs and reports
    # (the sides now differ: the old side took a write), writing nothing there
    verified = cdc("verify", "-c", str(path), "--json")
    assert verified.returncode in (0, 1), verified.stderr
    assert json.loads(verified.stdout)["tables"], verified.stdout
    assert "verify_not_recorded" in verified.stderr
    again = cdc("rollback", "-c", str(path), "--json")  # nothing to undo; the slot is free now
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["outcome"] == "already_done"
    if slot_on_target:
        assert "reverse_retired" in json.loads(again.stdout)["steps"]
        assert not reverse_slot_exists(settings)  # no WAL kept for an abandoned pipeline


def pg_old_side(dsn: str) -> OldSide:
    """A PostgreSQL source with 500 rows in items."""
    pg_execute(dsn, PG_TABLE.format("items"))
    pg_execute(
        dsn, "INSERT INTO items (v, n) SELECT 'seed ' || g, g FROM generate_series(1, 500) g"
    )
    return OldSide(
        {"type": "postgres", "dsn": dsn, "tables": ["public.items"]},
        lambda: pg_rows(dsn),
        lambda v: pg_insert(dsn, v),
        pg_writer(dsn),
    )


def pg_new_side(dsn: str, schema: str) -> NewSide:
    """A PostgreSQL target with an empty `schema`.items."""
    table = f'"{schema}".items'
    pg_execute(dsn, f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
    pg_execute(dsn, PG_TABLE.format(table))
    return NewSide(
        {"type": "postgres", "dsn": dsn},
        dsn,
        lambda: pg_rows(dsn, table),
        lambda: pg_new_side_writes(dsn, table),
    )


def test_pg_to_pg_cutover_reverse_and_rollback(
    tmp_path: Path, pg_dsn: str, pg_target_dsn: str, kafka_bootstrap: str, topic_prefix: str
) -> None:
    old, new = pg_old_side(pg_dsn), pg_new_side(pg_target_dsn, "public")
    cut_over_and_back(tmp_path, topic_prefix, kafka_bootstrap, old, new)


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
    new = pg_new_side(pg_target_dsn, database)
    with mysql_app_user(mysql_dsn, database) as app_dsn:
        old = OldSide(
            {"type": "mysql", "dsn": mysql_dsn, "tables": [f"{database}.items"]},
            lambda: my_rows(mysql_dsn),
            lambda v: my_insert(app_dsn, v),
            my_writer(app_dsn),
        )
        cut_over_and_back(tmp_path, topic_prefix, kafka_bootstrap, old, new)


def test_pg_to_mariadb_cutover_reverse_and_rollback(
    tmp_path: Path, pg_dsn: str, mysql_dsn: str, kafka_bootstrap: str, topic_prefix: str
) -> None:
    """The reverse pipeline reads MariaDB's binlog from the position the cut-over stored."""
    database = urlsplit(mysql_dsn).path.strip("/")
    my_execute(mysql_dsn, MY_TABLE)
    # the rollback fences the target: a server-wide read_only, lifted with the app user
    with mysql_app_user(mysql_dsn, database) as app_dsn:
        new = NewSide(
            {"type": "mysql", "dsn": mysql_dsn},
            mysql_dsn,
            lambda: my_rows(mysql_dsn),
            lambda: my_new_side_writes(app_dsn),
        )
        cut_over_and_back(tmp_path, topic_prefix, kafka_bootstrap, pg_old_side(pg_dsn), new)


def test_lag_gate_fails_with_the_sink_stopped(
    tmp_path: Path, pg_dsn: str, pg_target_dsn: str, kafka_bootstrap: str, topic_prefix: str
) -> None:
    pg_execute(pg_dsn, PG_TABLE.format("items"))
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
        pg_execute(dsn, PG_TABLE.format("items"))
    assert_not_captured_back(
        tmp_path,
        topic_prefix,
        kafka_bootstrap,
        {"type": "postgres", "dsn": pg_dsn, "tables": ["public.items"]},
        {"type": "postgres", "dsn": pg_target_dsn, "tables": ["public.items"]},
        lambda: pg_insert(pg_dsn, "through the sink"),
        lambda: pg_execute(pg_target_dsn, "INSERT INTO items VALUES (2, 'by hand', 0)"),
        lambda: len(pg_rows(pg_target_dsn)) == 1,
        "public",
    )


def test_changes_the_sink_applied_are_not_captured_back_mysql(
    tmp_path: Path, pg_dsn: str, mysql_dsn: str, kafka_bootstrap: str, topic_prefix: str
) -> None:
    """mysql_dsn is both the sink's target and another pipeline's source."""
    database = urlsplit(mysql_dsn).path.strip("/")
    pg_execute(pg_dsn, PG_TABLE.format("items"))
    my_execute(mysql_dsn, MY_TABLE)
    assert_not_captured_back(
        tmp_path,
        topic_prefix,
        kafka_bootstrap,
        {"type": "postgres", "dsn": pg_dsn, "tables": ["public.items"]},
        {"type": "mysql", "dsn": mysql_dsn, "tables": [f"{database}.items"]},
        lambda: pg_insert(pg_dsn, "through the sink"),
        lambda: my_execute(mysql_dsn, "INSERT INTO items VALUES (2, 'by hand', 0)"),
        lambda: len(my_rows(mysql_dsn)) == 1,
        database,
    )


def assert_not_captured_back(
    tmp_path: Path,
    name: str,
    bootstrap: str,
    source: dict[str, Any],
    target: dict[str, Any],
    write_through_sink: Callable[[], None],
    write_by_hand: Callable[[], None],
    sink_applied: Callable[[], bool],
    schema: str,
) -> None:
    """`name` replicates `source` into `target`, and `<name>_back` captures `target`
    (as a source only): what the sink applied there must not come back."""
    into_target = write_config(
        tmp_path / "a.yaml",
        config(name, source, {k: v for k, v in target.items() if k != "tables"}, bootstrap),
    )
    back = config(f"{name}_back", target, {}, bootstrap)
    from_target = write_config(
        tmp_path / "b.yaml", {**back, "target": None, "snapshot": {"mode": "never"}}
    )
    try:
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
    finally:
        delete_topics(bootstrap, f"{name}_back")
    assert 2 in seen  # the hand-written change is captured
    assert 1 not in seen  # the sink's is not: no loop
