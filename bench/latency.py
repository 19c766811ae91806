"""`latency_5k` and `latency_20k`: from a row's write on the source to the row on the target.

A steady writer (`bench.latency_load`) inserts at 5,000 or 20,000 rows per second for
up to `WINDOW_S` seconds (fewer rows in a smaller run), in one-row or ten-row
transactions, while `cdc run --role all` (a sink process per CPU) streams them into
PostgreSQL, started and caught up beforehand. Each target row carries both stamps;
the runner reports p50, p99 and max of their difference, and its rate is the rows
over the time from the first write to the last row on the target: a pipeline that
keeps up has the writer's rate.

Reference: the same writer alone (PostgreSQL, one-row transactions) into a table
nobody reads: the rate this machine can offer, which the others are held to.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from psycopg import sql

from bench import datasets, sink_apply
from bench.kafka_topics import delete_topics
from bench.latency_load import (
    MYSQL_SOURCE_DDL,
    PG_SOURCE_DDL,
    TABLE,
    Pace,
    pg_target_ddl,
    write_mysql,
    write_pg,
)
from bench.measure import Measurement
from bench.servers import Servers, pg_connect
from bench.workloads import Context, Runner, Workload

WINDOW_S = 15
PROBE_ID = 0  # written first and waited for: the pipeline is streaming
CATCH_UP_S = 120.0


@dataclass(frozen=True)
class LatencyState:
    bootstrap: str
    src_db: str
    dst_db: str


def _prepare(ctx: Context) -> LatencyState:
    return LatencyState(sink_apply.kafka_bootstrap(), f"{ctx.prefix}_lat_src", ctx.dst_db)


def _cleanup(ctx: Context, state: LatencyState) -> None:
    datasets.drop_pg_db(ctx.servers, state.src_db)
    datasets.drop_pg_db(ctx.servers, state.dst_db)
    datasets.drop_mysql_db(ctx.servers, state.src_db)


def _pace(ctx: Context, rate: int, rows_per_tx: int) -> Pace:
    rows = min(ctx.rows, rate * WINDOW_S)
    return Pace(rate, rows - rows % rows_per_tx, rows_per_tx)


def _fresh_pg_source(servers: Servers, db: str) -> None:
    datasets.recreate_pg_db(servers, db)
    with pg_connect(servers, db) as conn:
        conn.execute(PG_SOURCE_DDL)


def _reference(rate: int) -> Callable[[Context, LatencyState], Measurement]:
    def run(ctx: Context, state: LatencyState) -> Measurement:
        pace = _pace(ctx, rate, 1)
        _fresh_pg_source(ctx.servers, state.src_db)
        write_pg(ctx.servers, state.src_db, pace, 1)
        with pg_connect(ctx.servers, state.src_db) as conn:
            row = conn.execute(
                f"SELECT count(*), EXTRACT(epoch FROM max(written_at) - min(written_at))"
                f" FROM public.{TABLE}"
            ).fetchone()
        assert row is not None
        return Measurement(f"paced writer alone, {rate:,}/s", int(row[0]), float(row[1]))

    return run


def _stats(servers: Servers, db: str, schema: str, from_mysql: bool) -> tuple[Any, ...]:
    # a MariaDB row's written_at is UTC without a zone
    applied = "applied_at AT TIME ZONE 'UTC'" if from_mysql else "applied_at"
    query = sql.SQL(
        "SELECT count(*), EXTRACT(epoch FROM max({applied}) - min(written_at)),"
        " percentile_cont(0.5) WITHIN GROUP (ORDER BY ms),"
        " percentile_cont(0.99) WITHIN GROUP (ORDER BY ms), max(ms)"
        " FROM (SELECT written_at, applied_at,"
        "       EXTRACT(epoch FROM {applied} - written_at) * 1000 AS ms"
        "       FROM {table} WHERE id <> {probe}) AS rows"
    ).format(
        applied=sql.SQL(applied),
        table=sql.Identifier(schema, TABLE),
        probe=sql.Literal(PROBE_ID),
    )
    with pg_connect(servers, db) as conn:
        row = conn.execute(query).fetchone()
    assert row is not None
    return tuple(row)


def _ours(engine: str, rate: int, rows_per_tx: int) -> Runner[LatencyState]:
    name = f"cdc {'MariaDB' if engine == 'mysql' else 'PG'} -> PG, {rows_per_tx}-row tx"

    def run(ctx: Context, state: LatencyState) -> Measurement:
        pace = _pace(ctx, rate, rows_per_tx)
        pipeline = f"{ctx.prefix}_lat_{engine}_{os.getpid()}"[:63]
        from_mysql = engine == "mysql"
        if from_mysql:
            datasets.recreate_mysql_db(ctx.servers, state.src_db, MYSQL_SOURCE_DDL)
            source_dsn = sink_apply.mysql_dsn(ctx.servers, state.src_db)
            schema = state.src_db  # a MariaDB database is the target's schema
        else:
            _fresh_pg_source(ctx.servers, state.src_db)
            source_dsn = sink_apply.pg_dsn(ctx.servers, state.src_db)
            schema = "public"
        datasets.recreate_pg_db(ctx.servers, state.dst_db)
        with pg_connect(ctx.servers, state.dst_db) as conn:
            conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)))
            conn.execute(pg_target_ddl(f'"{schema}"', from_mysql).encode())
        source = {"type": engine, "dsn": source_dsn, "tables": [f"{schema}.{TABLE}"]}
        config = sink_apply.base_config(pipeline, source, state.bootstrap)
        config["target"] = {"type": "postgres", "dsn": sink_apply.pg_dsn(ctx.servers, state.dst_db)}
        config["sink"] = {"workers": sink_apply.SINK_WORKERS}
        write = write_mysql if from_mysql else write_pg
        target = sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(schema, TABLE))
        try:
            with (
                tempfile.TemporaryDirectory(prefix="cdc-bench-lat-", dir=ctx.workdir) as tmp,
                pg_connect(ctx.servers, state.dst_db) as conn,
            ):
                cdc = sink_apply.CdcProcess(ctx.servers, config, "all", Path(tmp))

                def arrived() -> int:
                    row = conn.execute(target).fetchone()
                    return int(row[0]) if row else 0

                try:
                    write(ctx.servers, state.src_db, Pace(rate, 1, 1), PROBE_ID)
                    cdc.wait_for(lambda: arrived() >= 1, f"{name}: streaming")
                    write(ctx.servers, state.src_db, pace, PROBE_ID + 1)
                    deadline = time.monotonic() + CATCH_UP_S
                    cdc.wait_for(
                        lambda: arrived() > pace.rows or time.monotonic() > deadline,
                        f"{name}: every row on the target",
                    )
                finally:
                    rss = cdc.stop()
        finally:
            delete_topics(state.bootstrap, pipeline)
            if not from_mysql:
                sink_apply.drop_slot_and_publication(ctx.servers, state.src_db, pipeline)
        rows, seconds, p50, p99, worst = _stats(ctx.servers, state.dst_db, schema, from_mysql)
        if rows != pace.rows:
            raise RuntimeError(f"{rows} of {pace.rows} rows reached the target in time")
        latency = (float(p50), float(p99), float(worst))
        return Measurement(name, int(rows), float(seconds), rss, latency_ms=latency)

    return Runner(
        name,
        "ours",
        run,
        note=f"cdc run --role all, sink.workers {sink_apply.SINK_WORKERS}, writer at {rate:,}"
        f" rows/s in {rows_per_tx}-row transactions; latency from the row's write on the"
        " source to its write on the target",
    )


def _workload(rate: int) -> Workload[LatencyState]:
    reference: Runner[LatencyState] = Runner(
        f"paced writer alone, {rate:,}/s",
        "reference",
        _reference(rate),
        note="the PostgreSQL writer in one-row transactions, nobody reading: the offered rate",
    )
    return Workload(
        name=f"latency_{rate // 1000}k",
        title=f"Latency at {rate:,} rows/s, into PostgreSQL",
        prepare=_prepare,
        reference=reference,
        runners=[_ours(e, rate, k) for e in ("postgres", "mysql") for k in (1, 10)],
        cleanup=_cleanup,
    )


WORKLOADS = [_workload(5_000), _workload(20_000)]
