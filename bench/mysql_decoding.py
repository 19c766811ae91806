"""MariaDB row decoding of N inserted rows.

Reference: ``mariadb-binlog --read-from-remote-server --verbose`` over the binlog
range that holds the load (``--base64-output=decode-rows`` so it prints the
decoded rows and not the raw event bytes besides). Peer: the stock
python-mysql-replication ``BinLogStreamReader`` iterating ``WriteRowsEvent.rows``
over the same range. Both count only rows of the bench table, since other
clients of the shared server may write inside the range.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass

from bench import datasets
from bench.measure import Collector, Measurement, NeedleCounter, run_timed
from bench.progress import log
from bench.servers import ROOT
from bench.workloads import Context, Runner, Workload

MYSQL_SOURCE = "mysql_src"


@dataclass(frozen=True)
class BinlogRange:
    db: str
    start: tuple[str, int]
    end: tuple[str, int]
    files: list[str]


def prepare(ctx: Context) -> BinlogRange:
    db = ctx.src_db
    datasets.recreate_mysql_db(ctx.servers, db)
    start = datasets.mysql_binlog_position(ctx.servers)
    datasets.load_mysql(ctx.servers, db, ctx.rows)
    ctx.loaded.add(MYSQL_SOURCE)
    end = datasets.mysql_binlog_position(ctx.servers)
    files = datasets.mysql_binlog_files(ctx.servers, start[0], end[0])
    log(f"mariadb decoding: binlog {start[0]}:{start[1]} .. {end[0]}:{end[1]}")
    return BinlogRange(db=db, start=start, end=end, files=files)


def run_mariadb_binlog(ctx: Context, rng: BinlogRange) -> Measurement:
    ep = ctx.servers.mysql
    counter = NeedleCounter(f"### INSERT INTO `{rng.db}`.`{datasets.TABLE}`".encode())
    timed = run_timed(
        [
            [
                "mariadb-binlog",
                "--read-from-remote-server",
                f"--host={ep.host}",
                f"--port={ep.port}",
                f"--user={ep.user}",
                "--base64-output=decode-rows",
                "--verbose",
                # The start position applies to the first file, the stop position to the last.
                f"--start-position={rng.start[1]}",
                f"--stop-position={rng.end[1]}",
                *rng.files,
            ]
        ],
        env=ctx.servers.tool_env(),
        sink=counter.feed,
    )
    if counter.count != ctx.rows:
        raise RuntimeError(f"mariadb-binlog decoded {counter.count} rows, expected {ctx.rows}")
    return Measurement(REFERENCE.name, counter.count, timed.seconds, timed.peak_rss_mb)


def _run_reader(module: str, name: str, ctx: Context, rng: BinlogRange) -> Measurement:
    out = Collector()
    timed = run_timed(
        [
            [
                sys.executable,
                "-m",
                module,
                f"--start-file={rng.start[0]}",
                f"--start-pos={rng.start[1]}",
                f"--end-file={rng.end[0]}",
                f"--end-pos={rng.end[1]}",
                f"--schema={rng.db}",
                f"--table={datasets.TABLE}",
            ]
        ],
        env=ctx.servers.tool_env(),
        sink=out.feed,
        cwd=str(ROOT),
    )
    rows = int(json.loads(out.data)["rows"])
    if rows != ctx.rows:
        raise RuntimeError(f"{name} decoded {rows} rows, expected {ctx.rows}")
    return Measurement(name, rows, timed.seconds, timed.peak_rss_mb)


def run_stock_reader(ctx: Context, rng: BinlogRange) -> Measurement:
    return _run_reader("bench.mysql_stock_reader", STOCK.name, ctx, rng)


def run_fast_reader(ctx: Context, rng: BinlogRange) -> Measurement:
    return _run_reader("bench.mysql_fast_reader", OURS.name, ctx, rng)


REFERENCE: Runner[BinlogRange] = Runner(
    "mariadb-binlog -v",
    "reference",
    run_mariadb_binlog,
    note="remote binlog read, decoded rows printed as text and counted by the bench",
)

STOCK: Runner[BinlogRange] = Runner(
    "python-mysql-replication (stock)",
    "peer",
    run_stock_reader,
    note="BinLogStreamReader, WriteRowsEvent.rows, includes interpreter start-up",
)

OURS: Runner[BinlogRange] = Runner(
    "cdc.mysql.rows",
    "ours",
    run_fast_reader,
    note="same BinLogStreamReader, rows decoded by RowDecoders, includes interpreter start-up",
)

WORKLOAD: Workload[BinlogRange] = Workload(
    name="mysql_decoding",
    title="MariaDB row decoding",
    prepare=prepare,
    reference=REFERENCE,
    runners=[OURS, STOCK],
    tools=("mariadb-binlog",),
)
