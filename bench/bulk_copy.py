"""Bulk copy of N rows into PostgreSQL: the snapshot path of a migration.

Reference: a raw ``psql -c 'COPY ... TO STDOUT' | psql -c 'COPY ... FROM STDIN'``
pipe from the source database to the target database on the same server, into
a table created beforehand without its key: the ceiling for PG->PG copy.
Peers: ``pgcopydb clone`` (PG->PG, whole database: schema, data, key build,
vacuum) and ``pgloader`` (MariaDB->PG, same rows: schema, data, key build).
Every runner starts from a freshly created, empty target database.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from bench import datasets
from bench.measure import Measurement, run_timed
from bench.mysql_decoding import MYSQL_SOURCE
from bench.pg_decoding import PG_SOURCE
from bench.servers import pg_connect
from bench.workloads import Context, Runner, Workload


@dataclass(frozen=True)
class CopyDbs:
    pg_src: str
    mysql_src: str
    dst: str


def prepare(ctx: Context) -> CopyDbs:
    # Reuse the sources the decoding workloads loaded in this run; load them if those did not run.
    if PG_SOURCE not in ctx.loaded:
        datasets.recreate_pg_db(ctx.servers, ctx.src_db)
        datasets.create_pg_table(ctx.servers, ctx.src_db)
        datasets.load_pg(ctx.servers, ctx.src_db, ctx.rows)
        ctx.loaded.add(PG_SOURCE)
    if MYSQL_SOURCE not in ctx.loaded:
        datasets.recreate_mysql_db(ctx.servers, ctx.src_db)
        datasets.load_mysql(ctx.servers, ctx.src_db, ctx.rows)
        ctx.loaded.add(MYSQL_SOURCE)
    return CopyDbs(pg_src=ctx.src_db, mysql_src=ctx.src_db, dst=ctx.dst_db)


def cleanup(ctx: Context, dbs: CopyDbs) -> None:
    datasets.drop_pg_db(ctx.servers, dbs.dst)


def _table_schema(ctx: Context, db: str) -> str:
    """Where a tool put the table (pgloader names the schema after the MariaDB database)."""
    with pg_connect(ctx.servers, db) as conn:
        row = conn.execute(
            "SELECT table_schema FROM information_schema.tables WHERE table_name = %s",
            (datasets.TABLE,),
        ).fetchone()
    if row is None:
        raise RuntimeError(f"no table {datasets.TABLE} in {db} after the copy")
    return str(row[0])


def _verified(ctx: Context, name: str, db: str, seconds: float, rss: float) -> Measurement:
    rows = datasets.pg_count(ctx.servers, db, _table_schema(ctx, db))
    if rows != ctx.rows:
        raise RuntimeError(f"{name} copied {rows} rows, expected {ctx.rows}")
    return Measurement(name, rows, seconds, rss)


def _scratch(ctx: Context, name: str) -> Path:
    path = ctx.workdir / name
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return path


def run_copy_pipe(ctx: Context, dbs: CopyDbs, *, with_key: bool = False) -> Measurement:
    """The pipe into a table created beforehand without its key (or with it)."""
    datasets.recreate_pg_db(ctx.servers, dbs.dst)
    datasets.create_pg_table(ctx.servers, dbs.dst, with_key=with_key)
    table = f"public.{datasets.TABLE}"
    psql = ["psql", "--no-psqlrc", "--quiet", "--set=ON_ERROR_STOP=1"]
    timed = run_timed(
        [
            [*psql, f"--dbname={dbs.pg_src}", f"--command=COPY {table} TO STDOUT"],
            [*psql, f"--dbname={dbs.dst}", f"--command=COPY {table} FROM STDIN"],
        ],
        env=ctx.servers.tool_env(),
    )
    return _verified(ctx, REFERENCE.name, dbs.dst, timed.seconds, timed.peak_rss_mb)


def run_pgcopydb(ctx: Context, dbs: CopyDbs) -> Measurement:
    datasets.recreate_pg_db(ctx.servers, dbs.dst)
    workdir = _scratch(ctx, "pgcopydb")
    timed = run_timed(
        [
            [
                "pgcopydb",
                "clone",
                f"--source={ctx.servers.pg_conninfo(dbs.pg_src)}",
                f"--target={ctx.servers.pg_conninfo(dbs.dst)}",
                f"--dir={workdir}",
                # Two cores: more jobs only add contention.
                "--table-jobs=2",
                "--index-jobs=2",
            ]
        ],
        env=ctx.servers.tool_env(),
    )
    return _verified(ctx, PGCOPYDB.name, dbs.dst, timed.seconds, timed.peak_rss_mb)


def run_pgloader(ctx: Context, dbs: CopyDbs) -> Measurement:
    datasets.recreate_pg_db(ctx.servers, dbs.dst)
    workdir = _scratch(ctx, "pgloader")
    my, pg = ctx.servers.mysql, ctx.servers.pg
    command = workdir / "load.pgl"
    # pgloader takes passwords only inside its URIs; the file is private to the bench's workdir.
    command.write_text(
        "LOAD DATABASE\n"
        f"  FROM mysql://{my.user}:{my.password}@{my.host}:{my.port}/{dbs.mysql_src}\n"
        f"  INTO postgresql://{pg.user}:{pg.password}@{pg.host}:{pg.port}/{dbs.dst}\n"
        "  WITH include drop, create tables, create indexes, workers = 2, concurrency = 1\n"
        ";\n"
    )
    command.chmod(0o600)
    timed = run_timed(
        [["pgloader", "--root-dir", str(workdir), "--quiet", str(command)]],
        env=ctx.servers.tool_env(),
    )
    return _verified(ctx, PGLOADER.name, dbs.dst, timed.seconds, timed.peak_rss_mb)


REFERENCE: Runner[CopyDbs] = Runner(
    "COPY pipe (psql | psql)",
    "reference",
    run_copy_pipe,
    note="PG->PG, text COPY through a pipe into a keyless table",
)
PGCOPYDB: Runner[CopyDbs] = Runner(
    "pgcopydb clone",
    "peer",
    run_pgcopydb,
    note="PG->PG, whole database: schema, data, index build, vacuum",
)
PGLOADER: Runner[CopyDbs] = Runner(
    "pgloader",
    "peer",
    run_pgloader,
    note="MariaDB->PG, same rows: schema, data, index build",
)

WORKLOAD: Workload[CopyDbs] = Workload(
    name="bulk_copy",
    title="Bulk copy into PostgreSQL (snapshot path)",
    prepare=prepare,
    reference=REFERENCE,
    runners=[PGCOPYDB, PGLOADER],
    cleanup=cleanup,
    tools=("psql", "pgcopydb", "pgloader"),
)
