"""Sink apply of small mixed transactions: inserts, updates and deletes, one per transaction.

The table: the bench table plus ``body``, 3,520 characters of md5 digests a row, which
neither pglz nor lz4 shrinks enough to keep inline: PostgreSQL stores it out of line
(TOAST; `prepare` checks). The ``ctx.rows`` changes, of every ten: 3 inserts of new rows,
5 updates of two columns (not the body: pgoutput sends it as unchanged TOAST, the sink
updates only the columns it has), 2 deletes; each one statement in a transaction of its
own, on a row no other change touches (so no sink batch merges two). The base rows (70 %
of ``ctx.rows``: those updated, then those deleted) are loaded before the slot exists,
so the stream holds only the mixed changes.

The changes are one SQL file (`Changes.statements`) both dialects take. ``prepare``
loads the base rows, keeps them as a template database on each server, creates the
publication and slot, replays the file into the source with ``psql`` and runs ``cdc run
--role source`` (``snapshot.mode: never``) until Kafka holds every change and tombstone.
Each runner starts from the base rows and must leave the target equal to the source.

Reference: ``psql -f`` of the file into a PostgreSQL target, a round trip and a commit
per change as the source's clients made them; peer: the ``mariadb`` client into MariaDB;
ours: ``cdc run --role sink`` into each, until its ``cdc_offsets`` reach the topic's end.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from functools import partial
from math import gcd
from pathlib import Path
from typing import Any

import pymysql
from confluent_kafka import Consumer
from psycopg import sql

from bench import datasets, sink_apply
from bench.kafka_topics import delete_topics, high_watermarks
from bench.measure import Measurement, run_timed
from bench.progress import log
from bench.servers import Servers, mysql_connect, pg_connect
from bench.workloads import Context, Runner, Workload

TABLE = "bench_mixed"
BODY_CHUNKS = 110  # md5 digests per body: 3,520 characters
PATTERN = "IUUIDUIUUD"  # of every ten changes: I insert, U update, D delete
STRIDE = 7919  # walks the updated and deleted keys out of order, as OLTP traffic does
PG_NAME = "cdc sink (Kafka -> PostgreSQL)"
MYSQL_NAME = "cdc sink (Kafka -> MariaDB)"

_PG_DDL = datasets.PG_DDL.replace(datasets.TABLE, TABLE).replace(
    "note       text", "note       text,\n    body       text NOT NULL"
)
_MYSQL_DDL = datasets.MYSQL_DDL.replace(datasets.TABLE, TABLE).replace(
    "note       TEXT", "note       TEXT,\n    body       TEXT NOT NULL"
)
# the rows of bench.datasets, with a body of md5 digests as `_body` writes it
_PG_BASE = datasets.PG_INSERT.replace(datasets.TABLE, TABLE).replace(
    " END\nFROM",
    f" END,\n (SELECT string_agg(md5(i || ':' || k), '' ORDER BY k)"
    f" FROM generate_series(1, {BODY_CHUNKS}) AS k)\nFROM",
)


def _amount(x: int) -> str:
    return f"{x // 100}.{x % 100:02d}"


def _body(i: int) -> str:
    return "".join(hashlib.md5(f"{i}:{k}".encode()).hexdigest() for k in range(1, BODY_CHUNKS + 1))


def _row(i: int) -> str:
    created = datetime(2024, 1, 1) + timedelta(microseconds=i * 1500007)
    note = "NULL" if i % 10 == 0 else f"'note {i} {'abcdefghij' * (i % 8)}'"
    return (
        f"({i}, {(i * 7919) % 1000003}, 'user-{i}', {_amount((i * 37) % 10000000)},"
        f" '{created:%Y-%m-%d %H:%M:%S.%f}', {note}, '{_body(i)}')"
    )


def _coprime(n: int) -> int:
    stride = STRIDE
    while gcd(stride, n) != 1:
        stride += 1
    return stride


@dataclass(frozen=True)
class Changes:
    inserts: int
    updates: int
    deletes: int

    @classmethod
    def of(cls, rows: int) -> Changes:
        full, rest = divmod(rows, len(PATTERN))
        counts = [full * PATTERN.count(k) + PATTERN[:rest].count(k) for k in "IUD"]
        return cls(*counts)

    @property
    def total(self) -> int:
        return self.inserts + self.updates + self.deletes

    @property
    def base(self) -> int:
        """Rows before the changes: ids 1..updates are updated, the next `deletes` deleted."""
        return self.updates + self.deletes

    @property
    def messages(self) -> int:
        """Kafka messages: each delete is followed by its tombstone."""
        return self.total + self.deletes

    def statements(self) -> Iterator[str]:
        """The changes as SQL both engines take, one statement (a transaction) a line."""
        counts = {"I": 0, "U": 0, "D": 0}
        su, sd = _coprime(max(self.updates, 1)), _coprime(max(self.deletes, 1))
        for j in range(self.total):
            kind = PATTERN[j % len(PATTERN)]
            c = counts[kind]
            counts[kind] += 1
            if kind == "I":
                yield f"INSERT INTO {TABLE} VALUES {_row(self.base + 1 + c)};\n"
            elif kind == "U":
                i = 1 + (c * su) % self.updates
                yield (
                    f"UPDATE {TABLE} SET n = {(i * 104729 + 1) % 1000003},"
                    f" amount = {_amount((i * 53) % 10000000)} WHERE id = {i};\n"
                )
            else:
                i = self.updates + 1 + (c * sd) % self.deletes
                yield f"DELETE FROM {TABLE} WHERE id = {i};\n"


@dataclass(frozen=True)
class MixedState:
    name: str  # the source's pipeline name: topic prefix, slot, publication
    bootstrap: str
    src: str  # PostgreSQL source database
    base: str  # the base rows: a PostgreSQL template database, a MariaDB database
    sql_file: Path
    messages: int = 0  # in the table topic: changes and tombstones
    digest: tuple[int, str] = (0, "")  # the source table's, by `_digest_rows`


def _names(ctx: Context) -> tuple[str, str, str]:
    return f"{ctx.prefix}_mixed_src", f"{ctx.prefix}_mixed_base", ctx.dst_db


def _sql(template: str, *names: str) -> sql.Composed:
    return sql.SQL(template).format(*map(sql.Identifier, names))


def _digest_rows(rows: Iterator[tuple[Any, ...]]) -> tuple[int, str]:
    """Count and md5 of rows in key order, each value as Python reads it from either engine
    (both give int, str, Decimal with the column's scale, datetime)."""
    digest, count = hashlib.md5(), 0
    for row in rows:
        count += 1
        text = (
            "\\N" if v is None else v.isoformat() if isinstance(v, datetime) else str(v)
            for v in row
        )
        digest.update("\x1f".join(text).encode() + b"\x1e")
    return count, digest.hexdigest()


def _pg_digest(servers: Servers, db: str) -> tuple[int, str]:
    with pg_connect(servers, db) as conn, conn.transaction():
        cur = conn.cursor(name="sink_mixed_digest")
        cur.execute(_sql("SELECT * FROM public.{} ORDER BY id", TABLE))
        return _digest_rows(iter(cur))


def _mysql_digest(servers: Servers, db: str) -> tuple[int, str]:
    with mysql_connect(servers, db) as conn, conn.cursor(pymysql.cursors.SSCursor) as cur:
        cur.execute(f"SELECT * FROM {TABLE} ORDER BY id")
        return _digest_rows(iter(cur))


def _load_base(servers: Servers, db: str, rows: int) -> None:
    """The base rows, checked to have their body TOASTed out of line."""
    datasets.recreate_pg_db(servers, db)
    with pg_connect(servers, db) as conn:
        conn.execute(_PG_DDL)
        for lo, hi in datasets.batches(rows):
            conn.execute(_PG_BASE, {"lo": lo, "hi": hi})
        conn.execute(f"VACUUM ANALYZE public.{TABLE}")
        row = conn.execute(
            "SELECT pg_relation_size(reltoastrelid), pg_relation_size(oid),"
            f" (SELECT coalesce(avg(pg_column_size(body))::int, 0) FROM public.{TABLE})"
            " FROM pg_class WHERE oid = %s::regclass",
            (f"public.{TABLE}",),
        ).fetchone()
    assert row is not None
    toast, heap, body = (int(v) for v in row)
    log(f"sink_mixed: {rows} base rows, heap {heap >> 20} MB, TOAST {toast >> 20} MB, {body} B")
    # out of line, every body fills TOAST chunks of its own size; kept inline, none
    if toast < rows * BODY_CHUNKS * 32 // 2:
        raise RuntimeError(f"the body column is not TOASTed out of line: {toast} bytes of TOAST")


def _copy_base_to_mysql(servers: Servers, src: str, base: str) -> None:
    datasets.recreate_mysql_db(servers, base, _MYSQL_DDL)
    with mysql_connect(servers, base) as my, my.cursor() as cur:
        insert = f"INSERT INTO {TABLE} VALUES (%s, %s, %s, %s, %s, %s, %s)"
        with pg_connect(servers, src) as pg, pg.transaction():
            read = pg.cursor(name="sink_mixed_base")
            read.execute(_sql("SELECT * FROM public.{} ORDER BY id", TABLE))
            while batch := read.fetchmany(1000):
                cur.executemany(insert, batch)


def _config(ctx: Context, state: MixedState, name: str) -> dict[str, Any]:
    source = {
        "type": "postgres",
        "dsn": sink_apply.pg_dsn(ctx.servers, state.src),
        "tables": [f"public.{TABLE}"],
    }
    config = sink_apply.base_config(name, source, state.bootstrap)
    config["kafka"]["topic_prefix"] = state.name
    return config


def _run_source(ctx: Context, state: MixedState, messages: int) -> int:
    """Our source from the slot until Kafka holds `messages`; the topic's messages."""
    topic = f"{state.name}.public.{TABLE}"
    config = _config(ctx, state, state.name) | {"snapshot": {"mode": "never"}}
    consumer = Consumer({"bootstrap.servers": state.bootstrap, "group.id": f"{state.name}_w"})
    work = ctx.workdir / f"{state.name}_source"
    cdc = sink_apply.CdcProcess(ctx.servers, config, "source", work)
    try:
        seconds = cdc.wait_for(lambda: high_watermarks(consumer, topic) >= messages, "the end")
    finally:
        rss = cdc.stop()
        held = high_watermarks(consumer, topic)
        consumer.close()
    log(f"sink_mixed: {held} messages in {topic} ({seconds:.1f}s, source peak rss {rss:.0f} MB)")
    return held


def _psql(db: str, path: Path) -> list[str]:
    return ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", db, "-f", str(path)]


def prepare(ctx: Context) -> MixedState:
    changes = Changes.of(ctx.rows)
    src, base, _ = _names(ctx)
    name = f"{ctx.prefix}_mixed_{os.getpid()}"[:60]  # the sinks' groups add _pg / _my
    state = MixedState(name, sink_apply.kafka_bootstrap(), src, base, ctx.workdir / "mixed.sql")
    try:
        _load_base(ctx.servers, src, changes.base)
        datasets.drop_pg_db(ctx.servers, base)
        with pg_connect(ctx.servers) as conn:
            conn.execute(_sql("CREATE DATABASE {} TEMPLATE {}", base, src))
        _copy_base_to_mysql(ctx.servers, src, base)
        with pg_connect(ctx.servers, src) as conn:
            # before the changes: pgoutput sends a change only under a publication that
            # existed when it was written
            conn.execute(_sql("CREATE PUBLICATION {} FOR TABLE public.{}", name, TABLE))
            conn.execute("SELECT pg_create_logical_replication_slot(%s, 'pgoutput')", (name,))
        with state.sql_file.open("w") as out:
            out.writelines(changes.statements())
        subprocess.run(
            _psql(src, state.sql_file),
            env=ctx.servers.tool_env() | {"PGOPTIONS": "-c synchronous_commit=off"},
            stdout=subprocess.DEVNULL,
            check=True,
        )
        log(f"sink_mixed: {changes} written to {src}, a transaction each")
        messages = _run_source(ctx, state, changes.messages)
        sink_apply.drop_slot_and_publication(ctx.servers, src, name)
        return replace(state, messages=messages, digest=_pg_digest(ctx.servers, src))
    except BaseException:
        cleanup(ctx, state)  # bench.run cleans up only after a prepare that returned
        raise


def cleanup(ctx: Context, state: MixedState) -> None:
    delete_topics(state.bootstrap, state.name)
    for db in _names(ctx):
        datasets.drop_pg_db(ctx.servers, db)  # and the slot, which pins its database
    for db in _names(ctx)[1:]:
        datasets.drop_mysql_db(ctx.servers, db)
    state.sql_file.unlink(missing_ok=True)


def _restore_pg(ctx: Context, state: MixedState) -> None:
    datasets.drop_pg_db(ctx.servers, ctx.dst_db)
    with pg_connect(ctx.servers) as conn:
        conn.execute(_sql("CREATE DATABASE {} TEMPLATE {}", ctx.dst_db, state.base))
    datasets.settle_pg(ctx.servers)  # the copy's dirty pages: flushed before the clock runs


def _restore_mysql(ctx: Context, state: MixedState) -> None:
    datasets.recreate_mysql_db(ctx.servers, ctx.dst_db, _MYSQL_DDL)
    with mysql_connect(ctx.servers, ctx.dst_db) as conn, conn.cursor() as cur:
        cur.execute(f"INSERT INTO {TABLE} SELECT * FROM `{state.base}`.{TABLE}")


def _check(ctx: Context, state: MixedState, mysql: bool) -> None:
    dst = (_mysql_digest if mysql else _pg_digest)(ctx.servers, ctx.dst_db)
    if dst != state.digest:
        raise RuntimeError(f"target {dst} differs from source {state.digest} (rows, md5)")


def run_psql(ctx: Context, state: MixedState) -> Measurement:
    _restore_pg(ctx, state)
    timed = run_timed([_psql(ctx.dst_db, state.sql_file)], env=ctx.servers.tool_env())
    _check(ctx, state, mysql=False)
    return Measurement(REFERENCE.name, ctx.rows, timed.seconds, timed.peak_rss_mb)


def run_mariadb(ctx: Context, state: MixedState) -> Measurement:
    _restore_mysql(ctx, state)
    my = ctx.servers.mysql
    argv = ["mariadb", f"--host={my.host}", f"--port={my.port}", f"--user={my.user}"]
    # --batch stops at the first error; `source` reads the file as stdin would
    argv += ["--batch", f"--database={ctx.dst_db}", "-e", f"source {state.sql_file}"]
    timed = run_timed([argv], env=ctx.servers.tool_env())
    _check(ctx, state, mysql=True)
    return Measurement(MARIADB.name, ctx.rows, timed.seconds, timed.peak_rss_mb)


def _run_sink(ctx: Context, state: MixedState, mysql: bool) -> Measurement:
    """Spawn until the target's offsets reach the topic's end, then the target checked."""
    (_restore_mysql if mysql else _restore_pg)(ctx, state)
    group = f"{state.name}_{'my' if mysql else 'pg'}"  # a group per target: each from offset 0
    dsn = (sink_apply.mysql_dsn if mysql else sink_apply.pg_dsn)(ctx.servers, ctx.dst_db)
    config = _config(ctx, state, group)
    config["target"] = {"type": "mysql" if mysql else "postgres", "dsn": dsn}
    config["sink"] = {"workers": sink_apply.SINK_WORKERS}
    with ExitStack() as stack:
        tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="cdc-mixed-", dir=ctx.workdir))
        if mysql:
            my = stack.enter_context(mysql_connect(ctx.servers))
            applied = partial(sink_apply.mysql_applied_offsets, my, ctx.dst_db, group)
        else:
            pg = stack.enter_context(pg_connect(ctx.servers, ctx.dst_db))
            applied = partial(sink_apply.applied_offsets, pg, group)
        cdc = sink_apply.CdcProcess(ctx.servers, config, "sink", Path(tmp))
        try:
            seconds = cdc.wait_for(lambda: applied() >= state.messages, "the end of the topic")
        finally:
            rss = cdc.stop()
    _check(ctx, state, mysql)
    return Measurement(MYSQL_NAME if mysql else PG_NAME, ctx.rows, seconds, rss)


REFERENCE: Runner[MixedState] = Runner(
    "psql replay, a transaction per change",
    "reference",
    run_psql,
    note="psql -f of the changes into the target at the base rows: one session, autocommit",
)
MARIADB: Runner[MixedState] = Runner(
    "mariadb client replay, a transaction per change",
    "peer",
    run_mariadb,
    note="the same SQL file through the mariadb client into a MariaDB target, autocommit",
)
SINK_PG: Runner[MixedState] = Runner(
    PG_NAME,
    "ours",
    partial(_run_sink, mysql=False),
    note=f"cdc run --role sink (sink.workers: {sink_apply.SINK_WORKERS}) from offset 0, spawn"
    " until cdc_offsets reach the topic's end (changes and tombstones)",
)
SINK_MYSQL: Runner[MixedState] = Runner(
    MYSQL_NAME,
    "ours",
    partial(_run_sink, mysql=True),
    note=f"cdc run --role sink (sink.workers: {sink_apply.SINK_WORKERS}) into MariaDB, as above",
)

WORKLOAD: Workload[MixedState] = Workload(
    name="sink_mixed",
    title="Sink apply of small mixed transactions",
    prepare=prepare,
    reference=REFERENCE,
    runners=[MARIADB, SINK_PG, SINK_MYSQL],
    cleanup=cleanup,
    tools=("psql", "mariadb"),
)
