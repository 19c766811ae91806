"""Sink apply: N insert events from Kafka into an empty PostgreSQL table.

Reference: the raw COPY pipe of ``bulk_copy`` (``psql COPY TO | psql COPY FROM``)
on the same rows into the same table as ours, with its primary key: the
ceiling of the data path a sink has (it cannot drop the key: updates and
deletes find their rows by it). Peer: the same pipe into a keyless table, the
ceiling of a bulk copy that builds its indexes afterwards (``bulk_copy``'s
reference), so the report also shows the sink against that.
Ours: ``cdc run --role sink`` from offset 0 into an empty target table created
beforehand with its primary key (as ``pg_dump --schema-only`` would), timed
from the spawn until the target's ``cdc_offsets`` reach the end of every
partition; each batch commits its rows and offsets in one transaction.

The events are put in Kafka once, in ``prepare``: ``cdc run --role source``
with an initial snapshot reads the bench table into ``<name>.public.bench_rows``
(``op: r`` events, which a sink applies as inserts).
"""

from __future__ import annotations

import os
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any
from urllib.parse import quote

import psycopg
import pymysql
import yaml
from confluent_kafka import Consumer
from psycopg import sql

from bench import bulk_copy, datasets
from bench.kafka_timing import stop_timed
from bench.kafka_topics import PARTITIONS, delete_topics, high_watermarks
from bench.measure import GNU_TIME, Measurement
from bench.pg_decoding import PG_SOURCE
from bench.progress import log
from bench.servers import ENV_FILE, ROOT, Servers, _read_env_file, pg_connect
from bench.workloads import Context, Runner, Workload

NAME = "cdc sink (Kafka -> PostgreSQL)"
TIMEOUT_S = 1800.0
POLL_S = 0.05
PG_PASSWORD_VAR = "CDC_BENCH_PG_PASSWORD"
MYSQL_PASSWORD_VAR = "CDC_BENCH_MYSQL_PASSWORD"
# sink.workers of our runners: one sink process per CPU, as an operator would set it
SINK_WORKERS = len(os.sched_getaffinity(0))


# -- helpers shared with bench.end_to_end ---------------------------------------------------


def kafka_bootstrap() -> str:
    values = _read_env_file(ENV_FILE) | dict(os.environ)
    bootstrap = values.get("CDC_KAFKA_BOOTSTRAP")
    if not bootstrap:
        raise RuntimeError("CDC_KAFKA_BOOTSTRAP unset; run `bash dev/services.sh up` first")
    return bootstrap


def pg_dsn(servers: Servers, db: str) -> str:
    """A DSN for a cdc config: the password stays out of the file and argv (`${...}`)."""
    pg = servers.pg
    return f"postgresql://{quote(pg.user, safe='')}:${{{PG_PASSWORD_VAR}}}@{pg.host}:{pg.port}/{db}"


def mysql_dsn(servers: Servers, db: str) -> str:
    my = servers.mysql
    return f"mysql://{quote(my.user, safe='')}:${{{MYSQL_PASSWORD_VAR}}}@{my.host}:{my.port}/{db}"


def cdc_env(servers: Servers) -> dict[str, str]:
    return servers.tool_env() | {
        PG_PASSWORD_VAR: quote(servers.pg.password, safe=""),
        MYSQL_PASSWORD_VAR: quote(servers.mysql.password, safe=""),
    }


def base_config(name: str, source: dict[str, Any], bootstrap: str) -> dict[str, Any]:
    return {
        "name": name,
        "source": source,
        "kafka": {"bootstrap_servers": bootstrap, "partitions": PARTITIONS},
        "metrics": {"listen": "127.0.0.1:0"},
        "log": {"level": "warning"},
    }


def drop_slot_and_publication(servers: Servers, db: str, name: str) -> None:
    """What `cdc run --role source` created on a PostgreSQL source (named after the pipeline)."""
    with pg_connect(servers) as conn:
        conn.execute(
            "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots"
            " WHERE slot_name = %s AND NOT active",
            (name,),
        )
    try:
        with pg_connect(servers, db) as conn:
            conn.execute(sql.SQL("DROP PUBLICATION IF EXISTS {}").format(sql.Identifier(name)))
    except psycopg.OperationalError:
        pass  # the database is gone already


class CdcProcess:
    """`cdc run -c FILE --role ROLE` under GNU time (for its peak RSS), log to a file."""

    def __init__(self, servers: Servers, config: dict[str, Any], role: str, work: Path) -> None:
        work.mkdir(parents=True, exist_ok=True)
        self.config_path = work / "cdc.yaml"
        self.config_path.write_text(yaml.safe_dump(config))
        self._stats = work / "time"
        self.log_path = work / "cdc.log"
        self._log = self.log_path.open("wb")
        argv = [
            GNU_TIME,
            "--format=%M",
            f"--output={self._stats}",
            str(ROOT / ".venv" / "bin" / "cdc"),
            "run",
            "-c",
            str(self.config_path),
            "--role",
            role,
        ]
        self.started = time.perf_counter()
        self.proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=self._log,
            env=cdc_env(servers),
        )

    def wait_for(self, done: Callable[[], bool], what: str) -> float:
        """Seconds from the spawn until `done()` holds; an exit or a timeout raises."""
        while not done():
            if self.proc.poll() is not None:
                tail = self.log_path.read_text(errors="replace")[-4000:]
                raise RuntimeError(f"cdc exited with {self.proc.returncode} before {what}:\n{tail}")
            if time.perf_counter() - self.started > TIMEOUT_S:
                raise RuntimeError(f"cdc did not reach {what} in {TIMEOUT_S}s")
            time.sleep(POLL_S)
        return time.perf_counter() - self.started

    def stop(self) -> float:
        """SIGTERM cdc (GNU time forwards no signal) and wait; its peak RSS in MB."""
        stop_timed(self.proc)
        self._log.close()
        text = self._stats.read_text().split() if self._stats.exists() else []
        return int(text[-1]) / 1024 if text else 0.0


def applied_offsets(conn: psycopg.Connection[Any], group: str) -> int:
    """Sum of the sink's next offsets in the target (0 before its first batch)."""
    try:
        row = conn.execute(
            "SELECT coalesce(sum(next_offset), 0) FROM public.cdc_offsets"
            " WHERE consumer_group = %s",
            (group,),
        ).fetchone()
    except psycopg.errors.UndefinedTable:
        return 0
    return int(row[0]) if row else 0


def mysql_applied_offsets(conn: Any, db: str, group: str) -> int:
    """`applied_offsets` of a MySQL/MariaDB target, whose `cdc_offsets` is in the DSN's
    database `db` (0 before the sink's first batch)."""
    try:
        with conn.cursor() as cur:
            cur.execute(
                f"SELECT COALESCE(SUM(next_offset), 0) FROM `{db}`.cdc_offsets"
                " WHERE consumer_group = %s",
                (group,),
            )
            row = cur.fetchone()
    except pymysql.err.ProgrammingError:  # no cdc_offsets yet
        return 0
    return int(row[0]) if row else 0


def table_digest(servers: Servers, db: str, schema: str = "public") -> tuple[int, str]:
    """Row count and md5 over every row's text in key order."""
    with pg_connect(servers, db) as conn:
        row = conn.execute(
            sql.SQL(
                "SELECT count(*), coalesce(md5(string_agg(t::text, '|' ORDER BY id)), '')"
                " FROM {}.{} t"
            ).format(sql.Identifier(schema), sql.Identifier(datasets.TABLE))
        ).fetchone()
    assert row is not None
    return int(row[0]), str(row[1])


def ensure_pg_source(ctx: Context) -> None:
    if PG_SOURCE not in ctx.loaded:
        datasets.recreate_pg_db(ctx.servers, ctx.src_db)
        datasets.create_pg_table(ctx.servers, ctx.src_db)
        datasets.load_pg(ctx.servers, ctx.src_db, ctx.rows)
        ctx.loaded.add(PG_SOURCE)


# -- the workload ---------------------------------------------------------------------------


@dataclass(frozen=True)
class SinkState:
    name: str  # pipeline name: topic prefix, slot, publication
    bootstrap: str
    events: int  # messages in the table topic


def prepare(ctx: Context) -> SinkState:
    ensure_pg_source(ctx)
    bootstrap = kafka_bootstrap()
    name = f"{ctx.prefix}_sink_{os.getpid()}"[:63]
    topic = f"{name}.public.{datasets.TABLE}"
    source = {
        "type": "postgres",
        "dsn": pg_dsn(ctx.servers, ctx.src_db),
        "tables": [f"public.{datasets.TABLE}"],
    }
    config = base_config(name, source, bootstrap)
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"{name}_watch"})
    cdc = CdcProcess(ctx.servers, config, "source", ctx.workdir / f"{name}_source")
    try:
        seconds = cdc.wait_for(
            lambda: high_watermarks(consumer, topic) >= ctx.rows, f"{ctx.rows} events in Kafka"
        )
    finally:
        rss = cdc.stop()
        consumer.close()
        drop_slot_and_publication(ctx.servers, ctx.src_db, name)
    log(f"sink_apply: {ctx.rows} events in {topic} ({seconds:.1f}s, source peak rss {rss:.0f} MB)")
    return SinkState(name=name, bootstrap=bootstrap, events=ctx.rows)


def cleanup(ctx: Context, state: SinkState) -> None:
    delete_topics(state.bootstrap, state.name)
    datasets.drop_pg_db(ctx.servers, ctx.dst_db)


def _copy_pipe(ctx: Context, name: str, *, with_key: bool) -> Measurement:
    dbs = bulk_copy.CopyDbs(pg_src=ctx.src_db, mysql_src=ctx.src_db, dst=ctx.dst_db)
    return replace(bulk_copy.run_copy_pipe(ctx, dbs, with_key=with_key), name=name)


def run_copy_pipe_keyed(ctx: Context, state: SinkState) -> Measurement:
    return _copy_pipe(ctx, REFERENCE.name, with_key=True)


def run_copy_pipe_keyless(ctx: Context, state: SinkState) -> Measurement:
    return _copy_pipe(ctx, KEYLESS.name, with_key=False)


def run_sink(ctx: Context, state: SinkState) -> Measurement:
    datasets.recreate_pg_db(ctx.servers, ctx.dst_db)
    datasets.create_pg_table(ctx.servers, ctx.dst_db)
    source = {
        "type": "postgres",
        "dsn": pg_dsn(ctx.servers, ctx.src_db),
        "tables": [f"public.{datasets.TABLE}"],
    }
    config = base_config(state.name, source, state.bootstrap)
    config["target"] = {"type": "postgres", "dsn": pg_dsn(ctx.servers, ctx.dst_db)}
    config["sink"] = {"workers": SINK_WORKERS}
    with (
        tempfile.TemporaryDirectory(prefix="cdc-bench-sink-", dir=ctx.workdir) as tmp,
        pg_connect(ctx.servers, ctx.dst_db) as conn,
    ):
        cdc = CdcProcess(ctx.servers, config, "sink", Path(tmp))
        try:
            seconds = cdc.wait_for(
                lambda: applied_offsets(conn, state.name) >= state.events,
                "the end of the topic",
            )
        finally:
            rss = cdc.stop()
    src, dst = table_digest(ctx.servers, ctx.src_db), table_digest(ctx.servers, ctx.dst_db)
    if dst != src:
        raise RuntimeError(f"target {dst} differs from source {src} (rows, md5)")
    return Measurement(NAME, dst[0], seconds, rss)


REFERENCE: Runner[SinkState] = Runner(
    "COPY pipe (psql | psql), keyed table",
    "reference",
    run_copy_pipe_keyed,
    note="PG->PG, text COPY through a pipe into the table ours fills, primary key included",
)
KEYLESS: Runner[SinkState] = Runner(
    "COPY pipe (psql | psql), keyless table",
    "peer",
    run_copy_pipe_keyless,
    note="PG->PG, text COPY through a pipe into the same table without its key",
)
SINK: Runner[SinkState] = Runner(
    NAME,
    "ours",
    run_sink,
    note=f"cdc run --role sink (sink.workers: {SINK_WORKERS}) from offset 0 into a keyed empty"
    " table, spawn until cdc_offsets reach the topic's end; rows and offsets commit together"
    " per batch",
)

WORKLOAD: Workload[SinkState] = Workload(
    name="sink_apply",
    title="Sink apply into PostgreSQL (insert batches from Kafka)",
    prepare=prepare,
    reference=REFERENCE,
    runners=[KEYLESS, SINK],
    cleanup=cleanup,
    tools=("psql",),
)
