"""Our direct copy (`snapshot.mode: direct`) against the tools a team would
otherwise use for the initial copy, on the rows the ``bulk_copy`` workload
loads (same tables, same run).

Two workloads, each with the tool as its reference, so the report's ratio is
the comparison asked for: ``direct_copy_pg`` (PG->PG, reference ``pgcopydb
clone``) and ``direct_copy_mysql`` (MariaDB->PG, reference ``pgloader``).

Our runner is ``cdc run --role source`` on a pipeline with a target and
``snapshot.mode: direct``, timed from the spawn (interpreter start-up, slot
or consistent snapshot, target table creation included) until it logs
``direct_copy_done``: every chunk is then committed on the target and the
table's key, dropped from the empty table before the load, is built again
(as pgcopydb builds its indexes inside its timed run). Both tools start from
an empty target database and end with the same table and key. It is then
stopped with SIGTERM; the target rows are counted as for every runner, and
the slot and topics it made are dropped.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any
from urllib.parse import quote

import yaml

from bench import bulk_copy, datasets
from bench.bulk_copy import CopyDbs
from bench.kafka_timing import stop_timed
from bench.kafka_topics import delete_topics
from bench.measure import GNU_TIME, Measurement
from bench.pg_source import kafka_bootstrap
from bench.servers import ROOT, pg_connect
from bench.workloads import Context, Runner, Workload

TIMEOUT_S = 900.0
PG_PASSWORD = "CDC_BENCH_PG_PASSWORD"
MYSQL_PASSWORD = "CDC_BENCH_MYSQL_PASSWORD"
DONE = b"direct_copy_done"  # the log event, as JSON on stderr
# Two workers, as pgcopydb's --table-jobs=2 --index-jobs=2: into a table
# loaded without its key the second worker pays off a little on two cores
# (500k rows, spawn to done, 5 interleaved runs on a shared machine: median
# 3.1 s with one worker, 2.8 s with two; with the key maintained during the
# load one worker had been faster). Large chunks amortise each chunk's
# transaction and progress row.
SNAPSHOT = {"mode": "direct", "parallelism": 2, "chunk_rows": 100_000}


def _pg_dsn(ctx: Context, db: str) -> str:
    pg = ctx.servers.pg
    # passwords stay out of the file and argv: ${...} is read from the environment
    return f"postgresql://{quote(pg.user, safe='')}:${{{PG_PASSWORD}}}@{pg.host}:{pg.port}/{db}"


def _source(ctx: Context, dbs: CopyDbs, engine: str) -> dict[str, Any]:
    if engine == "postgres":
        return {
            "type": "postgres",
            "dsn": _pg_dsn(ctx, dbs.pg_src),
            "tables": [f"public.{datasets.TABLE}"],
        }
    my = ctx.servers.mysql
    return {
        "type": "mysql",
        "dsn": f"mysql://{quote(my.user, safe='')}:${{{MYSQL_PASSWORD}}}@{my.host}:{my.port}",
        "tables": [f"{dbs.mysql_src}.{datasets.TABLE}"],
    }


def _run(ctx: Context, dbs: CopyDbs, engine: str, name: str) -> Measurement:
    datasets.recreate_pg_db(ctx.servers, dbs.dst)
    bootstrap = kafka_bootstrap()
    pipeline = f"{ctx.prefix}_direct_{engine}_{os.getpid()}"[:63]
    config = {
        "name": pipeline,
        "source": _source(ctx, dbs, engine),
        "kafka": {"bootstrap_servers": bootstrap},
        "target": {"type": "postgres", "dsn": _pg_dsn(ctx, dbs.dst), "create_tables": True},
        "snapshot": SNAPSHOT,
        "metrics": {"listen": "127.0.0.1:0"},
        "log": {"level": "info"},
    }
    env = ctx.servers.tool_env() | {
        PG_PASSWORD: quote(ctx.servers.pg.password, safe=""),
        MYSQL_PASSWORD: quote(ctx.servers.mysql.password, safe=""),
    }
    cdc = ROOT / ".venv" / "bin" / "cdc"
    with tempfile.TemporaryDirectory(prefix="cdc-bench-direct-", dir=ctx.workdir) as tmp:
        work = Path(tmp)
        path, stats, log_path = work / "cdc.yaml", work / "time", work / "cdc.log"
        path.write_text(yaml.safe_dump(config))
        argv = [GNU_TIME, "--format=%M", f"--output={stats}", str(cdc), "run", "-c", str(path)]
        argv += ["--role", "source"]
        try:
            seconds = _time_until_copied(argv, env, log_path)
        finally:
            delete_topics(bootstrap, pipeline)
            if engine == "postgres":
                _drop_slot(ctx, pipeline)
        peak_kb = int(stats.read_text().split()[-1])
    rows = datasets.pg_count(ctx.servers, dbs.dst, bulk_copy._table_schema(ctx, dbs.dst))
    if rows != ctx.rows:
        raise RuntimeError(f"{name} copied {rows} rows, expected {ctx.rows}")
    return Measurement(name, rows, seconds, peak_kb / 1024)


def _time_until_copied(argv: list[str], env: dict[str, str], log_path: Path) -> float:
    with log_path.open("wb") as log_file:
        start = time.perf_counter()
        proc = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log_file, env=env
        )
        try:
            while DONE not in log_path.read_bytes():
                if proc.poll() is not None:
                    tail = log_path.read_text(errors="replace")[-4000:]
                    raise RuntimeError(f"cdc exited with {proc.returncode}:\n{tail}")
                if time.perf_counter() - start > TIMEOUT_S:
                    raise RuntimeError(f"the direct copy took over {TIMEOUT_S}s")
                time.sleep(0.02)
            return time.perf_counter() - start
        finally:
            stop_timed(proc)


def _drop_slot(ctx: Context, slot: str) -> None:
    with pg_connect(ctx.servers) as conn:
        conn.execute(
            "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots"
            " WHERE slot_name = %s AND NOT active",
            (slot,),
        )


def run_pg(ctx: Context, dbs: CopyDbs) -> Measurement:
    return _run(ctx, dbs, "postgres", PG_NAME)


def run_mysql(ctx: Context, dbs: CopyDbs) -> Measurement:
    return _run(ctx, dbs, "mysql", MYSQL_NAME)


PG_NAME = "cdc direct copy (PG->PG)"
MYSQL_NAME = "cdc direct copy (MariaDB->PG)"
_NOTE = (
    "cdc run --role source, snapshot.mode direct, 2 workers, 100k-row chunks into a table"
    " created without its key, key built after the load; spawn until direct_copy_done"
)

PG_WORKLOAD: Workload[CopyDbs] = Workload(
    name="direct_copy_pg",
    title="Initial copy PG->PG: cdc direct copy vs pgcopydb clone",
    prepare=bulk_copy.prepare,
    reference=replace(bulk_copy.PGCOPYDB, role="reference"),
    runners=[Runner(PG_NAME, "ours", run_pg, note=f"{_NOTE}; binary COPY piped")],
    cleanup=bulk_copy.cleanup,
    tools=("pgcopydb",),
)
MYSQL_WORKLOAD: Workload[CopyDbs] = Workload(
    name="direct_copy_mysql",
    title="Initial copy MariaDB->PG: cdc direct copy vs pgloader",
    prepare=bulk_copy.prepare,
    reference=replace(bulk_copy.PGLOADER, role="reference"),
    runners=[
        Runner(
            MYSQL_NAME,
            "ours",
            run_mysql,
            note=f"{_NOTE}; CSV COPY lines formatted by MariaDB, read in blocks",
        )
    ],
    cleanup=bulk_copy.cleanup,
    tools=("pgloader",),
)
