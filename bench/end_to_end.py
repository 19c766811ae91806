"""End to end: N rows from a source database into an empty PostgreSQL target.

Reference: the raw COPY pipe of ``bulk_copy`` (PG to PG into a keyless table),
the ceiling of the data path, on the same rows.
Ours: ``cdc run --role all`` (source and sink in one daemon, a sink process
per CPU) with an initial snapshot of the loaded bench table,
``target.create_tables: true`` and an empty target database; timed from the spawn until the target's
``cdc_offsets`` cover every event of the table topic (one per row), then the
target is checked against the source: PG to PG by an md5 over every row's
text, MariaDB to PG by count and aggregates of every column. Every run has its
own pipeline name, so its topics, slot and consumer group start empty.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from psycopg import sql

from bench import bulk_copy, datasets, sink_apply
from bench.kafka_topics import delete_topics
from bench.measure import Measurement
from bench.servers import mysql_connect, pg_connect
from bench.workloads import Context, Runner, Workload

PG_NAME = "cdc PG -> PG (--role all)"
MYSQL_NAME = "cdc MariaDB -> PG (--role all)"


@dataclass(frozen=True)
class EndToEndState:
    bootstrap: str


def prepare(ctx: Context) -> EndToEndState:
    bulk_copy.prepare(ctx)  # loads both sources unless an earlier workload did
    return EndToEndState(bootstrap=sink_apply.kafka_bootstrap())


def cleanup(ctx: Context, state: EndToEndState) -> None:
    datasets.drop_pg_db(ctx.servers, ctx.dst_db)


def run_copy_pipe(ctx: Context, state: EndToEndState) -> Measurement:
    dbs = bulk_copy.CopyDbs(pg_src=ctx.src_db, mysql_src=ctx.src_db, dst=ctx.dst_db)
    return bulk_copy.run_copy_pipe(ctx, dbs)


def _run_all(
    ctx: Context, state: EndToEndState, runner: str, name: str, source: dict[str, Any]
) -> tuple[float, float]:
    """Seconds from the spawn until the target applied every row, and the peak RSS."""
    datasets.recreate_pg_db(ctx.servers, ctx.dst_db)
    config = sink_apply.base_config(name, source, state.bootstrap)
    config["target"] = {
        "type": "postgres",
        "dsn": sink_apply.pg_dsn(ctx.servers, ctx.dst_db),
        "create_tables": True,
    }
    config["sink"] = {"workers": sink_apply.SINK_WORKERS}
    try:
        with (
            tempfile.TemporaryDirectory(prefix="cdc-bench-e2e-", dir=ctx.workdir) as tmp,
            pg_connect(ctx.servers, ctx.dst_db) as conn,
        ):
            cdc = sink_apply.CdcProcess(ctx.servers, config, "all", Path(tmp))
            try:
                seconds = cdc.wait_for(
                    lambda: sink_apply.applied_offsets(conn, name) >= ctx.rows,
                    f"{runner}: every row applied",
                )
            finally:
                rss = cdc.stop()
    finally:
        delete_topics(state.bootstrap, name)
    return seconds, rss


def run_pg(ctx: Context, state: EndToEndState) -> Measurement:
    name = f"{ctx.prefix}_e2e_pg_{os.getpid()}"[:63]
    source = {
        "type": "postgres",
        "dsn": sink_apply.pg_dsn(ctx.servers, ctx.src_db),
        "tables": [f"public.{datasets.TABLE}"],
    }
    try:
        seconds, rss = _run_all(ctx, state, PG_NAME, name, source)
    finally:
        sink_apply.drop_slot_and_publication(ctx.servers, ctx.src_db, name)
    src = sink_apply.table_digest(ctx.servers, ctx.src_db)
    dst = sink_apply.table_digest(ctx.servers, ctx.dst_db)
    if dst != src:
        raise RuntimeError(f"target {dst} differs from source {src} (rows, md5)")
    return Measurement(PG_NAME, dst[0], seconds, rss)


def _mysql_aggregates(ctx: Context) -> tuple[Any, ...]:
    with mysql_connect(ctx.servers, ctx.src_db) as conn, conn.cursor() as cur:
        cur.execute(
            f"SELECT COUNT(*), SUM(id), SUM(n), SUM(amount), COUNT(note),"
            f" SUM(CHAR_LENGTH(note)), SUM(CHAR_LENGTH(label)), MIN(created_at), MAX(created_at)"
            f" FROM {datasets.TABLE}"
        )
        row = cur.fetchone()
    return _normalized(row)


def _pg_aggregates(ctx: Context, schema: str) -> tuple[Any, ...]:
    with pg_connect(ctx.servers, ctx.dst_db) as conn:
        row = conn.execute(
            sql.SQL(
                "SELECT count(*), sum(id), sum(n), sum(amount), count(note),"
                " sum(char_length(note)), sum(char_length(label)), min(created_at),"
                " max(created_at) FROM {}.{}"
            ).format(sql.Identifier(schema), sql.Identifier(datasets.TABLE))
        ).fetchone()
    return _normalized(row)


def _normalized(row: Any) -> tuple[Any, ...]:
    assert row is not None
    return tuple(Decimal(v) if isinstance(v, int | Decimal) else v for v in row)


def run_mysql(ctx: Context, state: EndToEndState) -> Measurement:
    name = f"{ctx.prefix}_e2e_my_{os.getpid()}"[:63]
    source = {
        "type": "mysql",
        "dsn": sink_apply.mysql_dsn(ctx.servers, ctx.src_db),
        "tables": [f"{ctx.src_db}.{datasets.TABLE}"],
    }
    seconds, rss = _run_all(ctx, state, MYSQL_NAME, name, source)
    # MySQL's schema is the database: the target table is <src_db>.bench_rows
    src, dst = _mysql_aggregates(ctx), _pg_aggregates(ctx, ctx.src_db)
    if dst != src:
        raise RuntimeError(f"target aggregates {dst} differ from the source's {src}")
    return Measurement(MYSQL_NAME, int(dst[0]), seconds, rss)


REFERENCE: Runner[EndToEndState] = Runner(
    bulk_copy.REFERENCE.name,
    "reference",
    run_copy_pipe,
    note="PG->PG, text COPY through a pipe into a keyless table (same rows)",
)
NOTE = (
    f"snapshot -> Kafka -> sink in one daemon (sink.workers: {sink_apply.SINK_WORKERS}),"
    " empty target (created by the sink) until every row is applied"
)
PG_TO_PG: Runner[EndToEndState] = Runner(
    PG_NAME,
    "ours",
    run_pg,
    note=NOTE,
)
MYSQL_TO_PG: Runner[EndToEndState] = Runner(
    MYSQL_NAME,
    "ours",
    run_mysql,
    note=NOTE,
)

WORKLOAD: Workload[EndToEndState] = Workload(
    name="end_to_end",
    title="End to end into PostgreSQL (cdc run --role all, snapshot path)",
    prepare=prepare,
    reference=REFERENCE,
    runners=[PG_TO_PG, MYSQL_TO_PG],
    cleanup=cleanup,
    tools=("psql",),
)
