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
from collections.abc import Callable
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
    rng = prepare_range(ctx, lambda: datasets.load_mysql(ctx.servers, ctx.src_db, ctx.rows))
    ctx.loaded.add(MYSQL_SOURCE)  # the bench table's rows: later workloads read them too
    return rng


def prepare_range(ctx: Context, load: Callable[[], None]) -> BinlogRange:
    """A fresh source database with the bench table, and the binlog range `load` wrote."""
    db = ctx.src_db
    datasets.recreate_mysql_db(ctx.servers, db)
    ctx.loaded.discard(MYSQL_SOURCE)  # what `load` writes is its own
    start = datasets.mysql_binlog_position(ctx.servers)
    load()
    end = datasets.mysql_binlog_position(ctx.servers)
    files = datasets.mysql_binlog_files(ctx.servers, start[0], end[0])
    log(f"mariadb decoding: binlog {start[0]}:{start[1]} .. {end[0]}:{end[1]}")
    return BinlogRange(db=db, start=start, end=end, files=files)


# how `mariadb-binlog --verbose` prints each kind of row change
_BINLOG_LINES = {"INSERT": "### INSERT INTO", "UPDATE": "### UPDATE", "DELETE": "### DELETE FROM"}


def run_mariadb_binlog(ctx: Context, rng: BinlogRange) -> Measurement:
    return mariadb_binlog(ctx, rng, REFERENCE.name, ("INSERT",), ctx.rows)


def mariadb_binlog(
    ctx: Context, rng: BinlogRange, runner: str, ops: tuple[str, ...], expected: int
) -> Measurement:
    """`mariadb-binlog -v` over the range, its row changes of the bench table (of the
    kinds `ops`: INSERT, UPDATE, DELETE) counted and checked."""
    table = f"`{rng.db}`.`{datasets.TABLE}`"
    counters = [NeedleCounter(f"{_BINLOG_LINES[op]} {table}".encode()) for op in ops]

    def feed(chunk: bytes) -> None:
        for counter in counters:
            counter.feed(chunk)

    ep = ctx.servers.mysql
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
        sink=feed,
    )
    count = sum(c.count for c in counters)
    if count != expected:
        raise RuntimeError(f"mariadb-binlog decoded {count} row changes, expected {expected}")
    return Measurement(runner, count, timed.seconds, timed.peak_rss_mb)


def run_reader(
    module: str, name: str, ctx: Context, rng: BinlogRange, expected: int | None = None
) -> Measurement:
    """A reader child process over the range; its row count checked against `expected`
    (default: the workload's rows)."""
    expected = ctx.rows if expected is None else expected
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
    if rows != expected:
        raise RuntimeError(f"{name} decoded {rows} rows, expected {expected}")
    return Measurement(name, rows, timed.seconds, timed.peak_rss_mb)


def run_stock_reader(ctx: Context, rng: BinlogRange) -> Measurement:
    return run_reader("bench.mysql_stock_reader", STOCK.name, ctx, rng)


def run_fast_reader(ctx: Context, rng: BinlogRange) -> Measurement:
    return run_reader("bench.mysql_fast_reader", OURS.name, ctx, rng)


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
