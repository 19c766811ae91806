"""`snapshot.mode: direct`: the snapshot straight into the target, then the
stream through Kafka, under a write load; and a copy killed half way."""

from __future__ import annotations

import random
import threading
from collections import Counter
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import psycopg

from cdc.app.engines import engine_for
from cdc.engine import Sides
from cdc.migrate.schema.apply import apply
from cdc.migrate.schema.plan import build
from cdc.migrate.verify.canonical import digest
from cdc.mysql.verify_sql import table_rows as mysql_rows
from cdc.postgres.verify_sql import table_rows as pg_rows
from cdc.settings_load import load_settings
from tests.integration.conftest import mysql_connect
from tests.integration.daemon_process import DaemonProcess, logged, wait_until, write_pg_config
from tests.integration.pipeline import mysql_pipeline, pg_pipeline, running
from tests.integration.pipeline import wait_until as wait_for
from tests.integration.test_sink_mysql_to_pg import COLUMNS as MYSQL_COLUMNS
from tests.integration.test_sink_mysql_to_pg import TABLES as MYSQL_TABLES
from tests.integration.test_sink_mysql_to_pg import mysql_digest
from tests.integration.test_sink_mysql_to_pg import workload as mysql_workload

ROW_PATH_DDL = """CREATE TABLE tagged (id INT PRIMARY KEY, flags BIT(8), span TIME(3),
    ratio DOUBLE)"""
ROW_PATH_COLUMNS = ["id", "flags", "span", "ratio"]
PG_TABLES = """
CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
CREATE TABLE items (
    id bigint PRIMARY KEY, name text, price numeric(12,2), tags text[], doc jsonb,
    created timestamptz, data bytea, ratio double precision
);
CREATE INDEX items_created ON items (created);
CREATE TABLE readings (
    sensor integer, label text, at timestamp(6), value real,
    PRIMARY KEY (sensor, label)
);
CREATE TABLE moods (
    id integer PRIMARY KEY, feeling mood NOT NULL, note varchar(40) CONSTRAINT moods_note UNIQUE
);
"""
PG_COLUMNS = {
    "items": ["id", "name", "price", "tags", "doc", "created", "data", "ratio"],
    "readings": ["sensor", "label", "at", "value"],
    "moods": ["id", "feeling", "note"],
}
PG_FILL = """
INSERT INTO items SELECT i, 'item ' || i || E'\\t\\u00fc', i * 1.25, ARRAY['a', 'b' || i],
    jsonb_build_object('n', i, 'q', 'x"y'), timestamptz '2024-05-01 10:00Z' + i * interval '1 s',
    decode(md5(i::text), 'hex'), i / 7.0
    FROM generate_series(1, {rows}) AS i;
INSERT INTO readings SELECT i % 50, 'l' || i, timestamp '2024-01-01' + i * interval '1 min', i / 3.0
    FROM generate_series(1, {rows} / 4) AS i;
INSERT INTO moods SELECT i, (ARRAY['sad', 'ok', 'happy']::mood[])[i % 3 + 1], 'n' || i
    FROM generate_series(1, 3000) AS i;
"""


def pg_workload(dsn: str, seed: int, rounds: int, top: int) -> None:
    """Inserts, updates, key changes and deletes on every table."""
    rng = random.Random(seed)
    with psycopg.connect(dsn, autocommit=True) as conn:
        for n in range(rounds):
            i = rng.randint(1, top)
            action = rng.random()
            if action < 0.4:
                conn.execute(
                    "INSERT INTO items (id, name, price, tags, doc) VALUES (%s, %s, 1.5, %s, %s)"
                    " ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name",
                    (top + seed * 100_000 + n, f"new {n}", ["z"], '{"new": true}'),
                )
                conn.execute(
                    "UPDATE moods SET feeling = 'happy', note = %s WHERE id = %s",
                    (f"w{n}", i % 3000 + 1),
                )
            elif action < 0.7:
                conn.execute("UPDATE items SET price = price + 1, doc = NULL WHERE id = %s", (i,))
                conn.execute("UPDATE readings SET value = value + 1 WHERE sensor = %s", (i % 50,))
            elif action < 0.8:
                conn.execute("UPDATE items SET id = id + 10000000 WHERE id = %s", (i,))
            else:
                conn.execute("DELETE FROM items WHERE id = %s", (i,))
                conn.execute("DELETE FROM readings WHERE label = %s", (f"l{i}",))


def pg_equal(source: str, target: str) -> bool:
    try:
        return all(
            digest(pg_rows(source, f"public.{t}", c)) == digest(pg_rows(target, f"public.{t}", c))
            for t, c in PG_COLUMNS.items()
        )
    except psycopg.errors.UndefinedTable:
        return False


def progress_rows(target: str, pipeline: str) -> dict[tuple[str, int], tuple[Any, ...]]:
    """(table, range) -> (done, chunks, copied_rows, updated_at) of the copy progress table."""
    with psycopg.connect(target) as conn:
        try:
            rows = conn.execute(
                "SELECT table_name, range_index, done, chunks, copied_rows, updated_at"
                " FROM cdc_copy_progress WHERE pipeline = %s",
                (pipeline,),
            ).fetchall()
        except psycopg.errors.UndefinedTable:
            return {}
    return {(r[0], r[1]): tuple(r[2:]) for r in rows}


def indexes(target: str, table: str) -> dict[str, str]:
    """Index name -> "primary", "unique" or "index" of a target table."""
    with psycopg.connect(target) as conn:
        rows = conn.execute(
            "SELECT c.relname, CASE WHEN i.indisprimary THEN 'primary'"
            " WHEN con.contype = 'u' THEN 'unique' ELSE 'index' END"
            " FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid"
            " LEFT JOIN pg_constraint con ON con.conindid = i.indexrelid"
            " AND con.conrelid = i.indrelid WHERE i.indrelid = %s::regclass",
            (table,),
        ).fetchall()
    return dict(rows)


def keys_left(target: str, pipeline: str) -> int:
    """How many dropped keys and indexes the direct copy has still to build."""
    with psycopg.connect(target) as conn:
        try:
            row = conn.execute(
                "SELECT count(*) FROM cdc_copy_deferred WHERE pipeline = %s", (pipeline,)
            ).fetchone()
        except psycopg.errors.UndefinedTable:
            return 0
    return row[0] if row else 0


def test_pg_to_pg_direct_copy_under_writes_ends_equal(
    tmp_path: Path, pg_dsn: str, pg_target_dsn: str, kafka_bootstrap: str, unique_name: str
) -> None:
    rows = 20_000
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute(PG_TABLES)
        conn.execute(PG_FILL.format(rows=rows))
        conn.execute("ANALYZE")
    settings = pg_pipeline(
        tmp_path,
        unique_name,
        pg_dsn,
        kafka_bootstrap,
        [f"public.{t}" for t in PG_COLUMNS],
        target={"type": "postgres", "dsn": pg_target_dsn, "create_tables": True},
    )
    settings.snapshot.mode = "direct"
    settings.snapshot.parallelism = 2
    # the whole schema first (`cdc schema --apply`): the copy loads the tables
    # without their keys and indexes, then builds them all again
    sides = Sides.of(settings, engine_for)
    plan = build(settings, sides, sides.source.table_defs(), sides.target.ddl())
    with sides.target.catalog() as catalog:
        outcomes = apply(catalog, plan.statements, sides.target.errors)
    assert {o.statement.name for o in outcomes if o.action == "created"} >= {
        "items",
        "items_created",
        "moods",
    }
    with running(settings, "all"):
        writer = threading.Thread(target=pg_workload, args=(pg_dsn, 1, 1500, rows))
        writer.start()
        writer.join()
        assert wait_for(lambda: pg_equal(pg_dsn, pg_target_dsn), timeout=120)
    assert indexes(pg_target_dsn, "public.items") == {
        "items_pkey": "primary",
        "items_created": "index",
    }
    assert indexes(pg_target_dsn, "public.readings") == {"readings_pkey": "primary"}
    assert indexes(pg_target_dsn, "public.moods") == {
        "moods_pkey": "primary",
        "moods_note": "unique",
    }
    assert keys_left(pg_target_dsn, unique_name) == 0
    progress = progress_rows(pg_target_dsn, unique_name)
    assert {table for table, _ in progress} == {f"public.{t}" for t in PG_COLUMNS}
    assert all(done for done, *_ in progress.values())
    # items was split into key ranges, each copied in chunks of chunk_rows (1000)
    items = [v for (table, _), v in progress.items() if table == "public.items"]
    assert len(items) > 1
    assert sum(chunks for _, chunks, _, _ in items) >= rows // 1000


def test_pg_direct_copy_through_transforms_ends_equal(
    tmp_path: Path, pg_dsn: str, pg_target_dsn: str, kafka_bootstrap: str, unique_name: str
) -> None:
    """With transforms, rows take the sink's path (wire values, transforms) instead of the pipe."""
    rows = 4000
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute(PG_TABLES)
        conn.execute(PG_FILL.format(rows=rows))
    settings = pg_pipeline(
        tmp_path,
        unique_name,
        pg_dsn,
        kafka_bootstrap,
        [f"public.{t}" for t in PG_COLUMNS],
        target={"type": "postgres", "dsn": pg_target_dsn, "create_tables": True},
        transforms=[{"type": "rename_table", "table": "public.moods", "to": "feelings"}],
    )
    settings.snapshot.mode = "direct"
    renamed = {"items": "items", "readings": "readings", "moods": "feelings"}

    def equal() -> bool:
        try:
            return all(
                digest(pg_rows(pg_dsn, f"public.{t}", c))
                == digest(pg_rows(pg_target_dsn, f"public.{renamed[t]}", c))
                for t, c in PG_COLUMNS.items()
            )
        except psycopg.errors.UndefinedTable:
            return False

    with running(settings, "all"):
        pg_workload(pg_dsn, 3, 300, rows)
        assert wait_for(equal, timeout=120)
    progress = progress_rows(pg_target_dsn, unique_name)
    assert progress and all(done for done, *_ in progress.values())


def test_mariadb_to_pg_direct_copy_under_writes_ends_equal(
    tmp_path: Path, mysql_dsn: str, pg_target_dsn: str, kafka_bootstrap: str, unique_name: str
) -> None:
    database = urlsplit(mysql_dsn).path.strip("/")
    with mysql_connect(mysql_dsn) as conn, conn.cursor() as cur:
        for ddl in MYSQL_TABLES:
            cur.execute(ddl)
        # types MariaDB cannot write as COPY lines: this table takes the row path
        cur.execute(ROW_PATH_DDL)
        cur.executemany(
            "INSERT INTO tagged VALUES (%s, %s, %s, %s)",
            [(i, i % 256, f"-{i % 30}:01:02.5", i / 3) for i in range(1, 1201)],
        )
    mysql_workload(mysql_dsn, seed=1, rounds=3000)
    settings = mysql_pipeline(
        tmp_path,
        unique_name,
        mysql_dsn,
        kafka_bootstrap,
        [f"{database}.{t}" for t in [*MYSQL_COLUMNS, "tagged"]],
        target={"type": "postgres", "dsn": pg_target_dsn, "create_tables": True},
    )
    settings.snapshot.mode = "direct"
    settings.snapshot.chunk_rows = 100
    with running(settings, "all"):
        writer = threading.Thread(target=mysql_workload, args=(mysql_dsn, 2, 600))
        writer.start()
        with mysql_connect(mysql_dsn) as conn, conn.cursor() as cur:
            for i in range(1, 1201, 7):
                cur.execute("UPDATE tagged SET flags = 3, ratio = -ratio WHERE id = %s", (i,))
            cur.execute("DELETE FROM tagged WHERE id % 11 = 0")
        writer.join()
        parts = urlsplit(mysql_dsn)
        args = {"host": parts.hostname, "port": parts.port, "user": parts.username}
        args["password"] = parts.password

        def unequal() -> list[str]:
            """The tables whose rows differ between the source and the target."""
            try:
                found = [
                    t
                    for t in MYSQL_COLUMNS
                    if mysql_digest(mysql_dsn, database, t)
                    != digest(pg_rows(pg_target_dsn, f"{database}.{t}", MYSQL_COLUMNS[t]))
                ]
                tagged = f"{database}.tagged"
                if digest(mysql_rows(args, tagged, ROW_PATH_COLUMNS)) != digest(
                    pg_rows(pg_target_dsn, tagged, ROW_PATH_COLUMNS)
                ):
                    found.append("tagged")
                return found
            except psycopg.errors.UndefinedTable as exc:
                return [str(exc)]

        assert wait_for(lambda: not unequal(), timeout=120), unequal()
    progress = progress_rows(pg_target_dsn, unique_name)
    assert {table for table, _ in progress} == {
        f"{database}.{t}" for t in [*MYSQL_COLUMNS, "tagged"]
    }
    assert all(done for done, *_ in progress.values())
    chunks = Counter[str]()
    for (table, _), (_, count, _, _) in progress.items():
        chunks[table] += count
    assert all(count > 1 for count in chunks.values()), chunks


def test_direct_copy_killed_half_way_resumes_without_recopying(
    tmp_path: Path, pg_dsn: str, pg_target_dsn: str, kafka_bootstrap: str, unique_name: str
) -> None:
    rows = 300_000
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE big (id bigint PRIMARY KEY, n integer, payload text)")
        conn.execute(
            "INSERT INTO big SELECT i, i %% 1000, repeat('p', i %% 50)"
            " FROM generate_series(1, %s) i",
            (rows,),
        )
        conn.execute("ANALYZE big")
    config = write_pg_config(
        tmp_path / "direct.yaml",
        unique_name,
        pg_dsn,
        kafka_bootstrap,
        ["public.big"],
        snapshot={"mode": "direct", "chunk_rows": 500, "parallelism": 2},
        target={"type": "postgres", "dsn": pg_target_dsn, "create_tables": True},
    )

    first = DaemonProcess(config, tmp_path / "first.log")
    try:
        wait_until(
            lambda: sum(v[1] for v in progress_rows(pg_target_dsn, unique_name).values()) >= 60,
            120,
            "60 chunks copied",
            first,
        )
    finally:
        first.kill9()
    before = progress_rows(pg_target_dsn, unique_name)
    assert not all(done for done, *_ in before.values()), "the copy ended before the kill"
    # loaded without its key, which the restarted copy builds when it is done
    assert indexes(pg_target_dsn, "public.big") == {}
    assert keys_left(pg_target_dsn, unique_name) == 2  # its index, then the key on it
    # changes while no source runs: the resumed copy and the stream must both carry them
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute("UPDATE big SET n = -1 WHERE id % 997 = 0")
        conn.execute("DELETE FROM big WHERE id % 1009 = 0")
        conn.execute(
            "INSERT INTO big SELECT i, 7, 'new' FROM generate_series(%s, %s) i",
            (rows + 1, rows + 2000),
        )

    second = DaemonProcess(config, tmp_path / "second.log")
    try:
        with running(load_settings(config), "sink"):
            wait_until(lambda: logged(second, "direct_copy_done"), 180, "the copy", second)
            with psycopg.connect(pg_dsn, autocommit=True) as conn:
                conn.execute("UPDATE big SET payload = 'streamed' WHERE id % 101 = 0")
            columns = ["id", "n", "payload"]
            assert wait_for(
                lambda: (
                    digest(pg_rows(pg_dsn, "public.big", columns))
                    == digest(pg_rows(pg_target_dsn, "public.big", columns))
                ),
                timeout=120,
            )
    finally:
        second.stop()
    after = progress_rows(pg_target_dsn, unique_name)
    assert all(done for done, *_ in after.values())
    assert indexes(pg_target_dsn, "public.big") == {"big_pkey": "primary"}
    assert keys_left(pg_target_dsn, unique_name) == 0
    for key, (done, chunks, copied, updated_at) in before.items():
        if done:  # finished before the kill: never copied again
            assert after[key] == (done, chunks, copied, updated_at)
        else:  # resumed after its last committed chunk
            assert after[key][1] >= chunks and after[key][2] >= copied
    events = second.log_events()
    started = next(e for e in events if e["event"] == "direct_copy_started")
    assert started["resumed"] and started["ranges_done"] == sum(v[0] for v in before.values())
    copied_now = next(e for e in events if e["event"] == "direct_copy_done")["chunks"]
    assert copied_now == sum(v[1] for v in after.values()) - sum(v[1] for v in before.values())


def test_direct_copy_killed_before_its_key_is_built_builds_it_on_restart(
    tmp_path: Path, pg_dsn: str, pg_target_dsn: str, kafka_bootstrap: str, unique_name: str
) -> None:
    # large enough, in small chunks, that the copy outlasts the test's polling
    # between the key's drop and the lock below (the copy is a few seconds)
    rows = 100_000
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE big (id bigint PRIMARY KEY, n integer)")
        conn.execute("INSERT INTO big SELECT i, i FROM generate_series(1, %s) i", (rows,))
    config = write_pg_config(
        tmp_path / "direct.yaml",
        unique_name,
        pg_dsn,
        kafka_bootstrap,
        ["public.big"],
        snapshot={"mode": "direct", "chunk_rows": 500, "parallelism": 1},
        target={"type": "postgres", "dsn": pg_target_dsn, "create_tables": True},
    )

    first = DaemonProcess(config, tmp_path / "first.log")
    with psycopg.connect(pg_target_dsn) as blocker:
        try:
            wait_until(
                lambda: keys_left(pg_target_dsn, unique_name) > 0, 60, "key dropped", first, 0.05
            )
            # ROW EXCLUSIVE lets the COPYs in but holds CREATE INDEX (SHARE) back:
            # the daemon is stopped exactly between the copy and the key
            blocker.execute("LOCK TABLE big IN ROW EXCLUSIVE MODE")
            wait_until(
                lambda: index_build_waiting(pg_target_dsn), 120, "the key build waiting", first
            )
        finally:
            first.kill9()
    progress = progress_rows(pg_target_dsn, unique_name)
    assert all(done for done, *_ in progress.values())
    assert sum(copied for _, _, copied, _ in progress.values()) == rows
    assert indexes(pg_target_dsn, "public.big") == {}

    second = DaemonProcess(config, tmp_path / "second.log")
    try:
        with running(load_settings(config), "sink"):
            wait_until(lambda: logged(second, "direct_copy_done"), 120, "the copy", second)
            assert indexes(pg_target_dsn, "public.big") == {"big_pkey": "primary"}
            with psycopg.connect(pg_dsn, autocommit=True) as conn:
                conn.execute("UPDATE big SET n = -n WHERE id % 7 = 0")
                conn.execute("INSERT INTO big VALUES (%s, 1)", (rows + 1,))
            assert wait_for(
                lambda: (
                    digest(pg_rows(pg_dsn, "public.big", ["id", "n"]))
                    == digest(pg_rows(pg_target_dsn, "public.big", ["id", "n"]))
                ),
                timeout=120,
            )
    finally:
        second.stop()
    assert keys_left(pg_target_dsn, unique_name) == 0
    started = next(e for e in second.log_events() if e["event"] == "direct_copy_started")
    assert started["ranges_left"] == 0


def index_build_waiting(target: str) -> bool:
    """Whether a session of the target waits for a lock to build an index."""
    return waiting(target, "CREATE UNIQUE INDEX")


# values a COPY line must keep apart: NULL and '', CSV quotes and commas, the
# text format's escapes and its end-of-data marker
TRICKY = ["", None, 'say "hi", twice', "back\\slash \\N", "tab\tnew\nline\r", "\\.", "ü 表"]


def test_mariadb_direct_copy_killed_mid_copy_and_before_its_key_resumes(
    tmp_path: Path, mysql_dsn: str, pg_target_dsn: str, kafka_bootstrap: str, unique_name: str
) -> None:
    rows = 200_000
    database = urlsplit(mysql_dsn).path.strip("/")
    with mysql_connect(mysql_dsn) as conn, conn.cursor() as cur:
        cur.execute("CREATE TABLE big (id BIGINT PRIMARY KEY, n INT, note TEXT, raw VARBINARY(8))")
        cur.executemany(
            "INSERT INTO big VALUES (%s, %s, %s, %s)",
            [
                (i, i % 1000, TRICKY[i % 7], None if i % 5 == 0 else bytes(range(i % 4)))
                for i in range(1, rows + 1)
            ],
        )
        cur.execute("ANALYZE TABLE big")
    config = write_pg_config(
        tmp_path / "direct.yaml",
        unique_name,
        mysql_dsn,
        kafka_bootstrap,
        [f"{database}.big"],
        source={"type": "mysql"},
        snapshot={"mode": "direct", "chunk_rows": 200, "parallelism": 2},
        target={"type": "postgres", "dsn": pg_target_dsn, "create_tables": True},
    )
    target = f"{database}.big"

    # 1. killed while chunks are being copied: SHARE holds every COPY back
    first = DaemonProcess(config, tmp_path / "first.log")
    with psycopg.connect(pg_target_dsn) as blocker:
        try:
            wait_until(
                lambda: sum(v[1] for v in progress_rows(pg_target_dsn, unique_name).values()) >= 10,
                60,
                "10 chunks copied",
                first,
                0.05,
            )
            blocker.execute(f"LOCK TABLE {target} IN SHARE MODE")
            wait_until(lambda: waiting(pg_target_dsn, "COPY"), 60, "a COPY waiting", first)
        finally:
            first.kill9()
    before = progress_rows(pg_target_dsn, unique_name)
    assert len(before) > 1, "the table is copied in several key ranges"
    assert not all(done for done, *_ in before.values()), "the copy ended before the kill"
    assert indexes(pg_target_dsn, target) == {}
    assert keys_left(pg_target_dsn, unique_name) == 2  # its index, then the key on it
    # changes while no source runs: the resumed copy and the stream must both carry them
    with mysql_connect(mysql_dsn) as conn, conn.cursor() as cur:
        cur.execute("UPDATE big SET n = -1, note = 'x\"y' WHERE id % 997 = 0")
        cur.execute("DELETE FROM big WHERE id % 1009 = 0")
        cur.execute(f"INSERT INTO big SELECT seq, 7, '', NULL FROM seq_{rows + 1}_to_{rows + 2000}")

    # 2. killed between the copy and the key: ROW EXCLUSIVE lets the COPYs in,
    # holds CREATE INDEX (SHARE) back
    second = DaemonProcess(config, tmp_path / "second.log")
    with psycopg.connect(pg_target_dsn) as blocker:
        try:
            blocker.execute(f"LOCK TABLE {target} IN ROW EXCLUSIVE MODE")
            wait_until(lambda: index_build_waiting(pg_target_dsn), 120, "the key build", second)
        finally:
            second.kill9()
    copied = progress_rows(pg_target_dsn, unique_name)
    assert all(done for done, *_ in copied.values())
    assert indexes(pg_target_dsn, target) == {}
    for key, (done, chunks, rows_copied, updated_at) in before.items():
        if done:  # finished before the first kill: never copied again
            assert copied[key] == (done, chunks, rows_copied, updated_at)

    # 3. the third run builds the key and streams
    third = DaemonProcess(config, tmp_path / "third.log")
    columns = ["id", "n", "note", "raw"]
    parts = urlsplit(mysql_dsn)
    args = {"host": parts.hostname, "port": parts.port, "user": parts.username}
    args["password"] = parts.password
    try:
        with running(load_settings(config), "sink"):
            wait_until(lambda: logged(third, "direct_copy_done"), 120, "the copy", third)
            assert indexes(pg_target_dsn, target) == {"big_pkey": "primary"}
            with mysql_connect(mysql_dsn) as conn, conn.cursor() as cur:
                cur.execute("UPDATE big SET note = 'streamed' WHERE id % 101 = 0")
            assert wait_for(
                lambda: (
                    digest(mysql_rows(args, target, columns))
                    == digest(pg_rows(pg_target_dsn, target, columns))
                ),
                timeout=120,
            )
    finally:
        third.stop()
    assert keys_left(pg_target_dsn, unique_name) == 0
    started = next(e for e in third.log_events() if e["event"] == "direct_copy_started")
    assert started["ranges_left"] == 0


def waiting(target: str, statement: str) -> bool:
    """Whether a session of the target waits for a lock to run `statement`."""
    with psycopg.connect(target) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
            " AND wait_event_type = 'Lock' AND query ILIKE %s",
            (statement + "%",),
        ).fetchone()
    return bool(row and row[0])


def test_mariadb_direct_copy_of_rows_wider_than_a_block_is_complete(
    tmp_path: Path, mysql_dsn: str, pg_target_dsn: str, kafka_bootstrap: str, unique_name: str
) -> None:
    # small rows but for 20 of 1 MB, all in the first block: the block the
    # average row length sizes is longer than max_allowed_packet (16 MB)
    database = urlsplit(mysql_dsn).path.strip("/")
    with mysql_connect(mysql_dsn) as conn, conn.cursor() as cur:
        cur.execute("CREATE TABLE wide (id INT PRIMARY KEY, body LONGTEXT)")
        cur.executemany("INSERT INTO wide VALUES (%s, %s)", [(i, f"r{i}") for i in range(1, 5001)])
        for i in range(1, 21):
            cur.execute(
                "UPDATE wide SET body = REPEAT(%s, 1048576) WHERE id = %s", (chr(96 + i), i)
            )
        cur.execute("ANALYZE TABLE wide")
        cur.execute("SELECT @@max_allowed_packet")
        assert cur.fetchone()[0] < 20 * 1048576
    config = write_pg_config(
        tmp_path / "direct.yaml",
        unique_name,
        mysql_dsn,
        kafka_bootstrap,
        [f"{database}.wide"],
        source={"type": "mysql"},
        snapshot={"mode": "direct", "chunk_rows": 2000},
        target={"type": "postgres", "dsn": pg_target_dsn, "create_tables": True},
    )
    daemon = DaemonProcess(config, tmp_path / "copy.log")
    try:
        wait_until(lambda: logged(daemon, "direct_copy_done"), 120, "the copy", daemon)
    finally:
        daemon.stop()
    parts = urlsplit(mysql_dsn)
    args = {"host": parts.hostname, "port": parts.port, "user": parts.username}
    args["password"] = parts.password
    table = f"{database}.wide"
    assert digest(mysql_rows(args, table, ["id", "body"])) == digest(
        pg_rows(pg_target_dsn, table, ["id", "body"])
    )
