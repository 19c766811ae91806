"""``python -m bench.run``: run the workloads, write bench/results/report.md and results.json.

Each workload prepares its data, every runner measures it, the workload cleans
up (replication slots, target database); at the end the bench databases go too,
so a run leaves nothing behind and the next one starts from scratch.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import os
import platform
import shlex
import sys
import tempfile
import traceback
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import datasets, report, tools
from bench.measure import GNU_TIME
from bench.progress import log
from bench.registry import WORKLOADS
from bench.servers import ROOT, Servers, load_servers, mysql_connect, pg_connect
from bench.workloads import Context, Entry, Result, Workload

DEFAULT_ROWS = 1_000_000


def _parse(argv: list[str] | None) -> argparse.Namespace:
    names = [w.name for w in WORKLOADS]
    p = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__)
    p.add_argument(
        "--rows",
        type=int,
        default=int(os.environ.get("BENCH_ROWS", DEFAULT_ROWS)),
        help="rows per workload (env BENCH_ROWS; default %(default)s)",
    )
    p.add_argument("--out", type=Path, default=ROOT / "bench" / "results", help="report directory")
    p.add_argument(
        "--only", action="append", choices=names, help="run only this workload (repeatable)"
    )
    p.add_argument(
        "--prefix",
        default=os.environ.get("BENCH_DB_PREFIX", "bench"),
        help="name prefix of the bench databases and slots (<prefix>_src, <prefix>_dst)",
    )
    p.add_argument("--keep", action="store_true", help="keep the bench databases afterwards")
    p.add_argument(
        "--skip",
        action="append",
        default=[],
        metavar="TEXT",
        help="leave out the runners whose name holds TEXT (repeatable), e.g. --skip Debezium",
    )
    args = p.parse_args(argv)
    if args.rows < 1:
        p.error("--rows must be positive")
    return args


def _versions(servers: Servers, workloads: list[Workload[Any]]) -> dict[str, str]:
    versions: dict[str, str] = {}
    with pg_connect(servers) as conn:
        row = conn.execute("SELECT version()").fetchone()
        versions["postgresql"] = str(row[0]).split(",")[0] if row else "?"
    with mysql_connect(servers) as conn, conn.cursor() as cur:
        cur.execute("SELECT VERSION()")
        versions["mariadb"] = str(cur.fetchone()[0])
    for w in workloads:
        for tool in w.tools:
            versions[tool] = tools.version([tool, "--version"])
    versions["python-mysql-replication"] = importlib.metadata.version("mysql-replication")
    versions["python"] = platform.python_version()
    return versions


def _failure(what: str, exc: Exception) -> str:
    # One broken tool should not cost the other figures of a long run: report and go on.
    traceback.print_exc()
    log(f"{what} FAILED: {exc}")
    # One line: it lands in a markdown table cell; the full text is on stderr above.
    return " ".join(str(exc).split())[:300]


def _run_workload(ctx: Context, workload: Workload[Any]) -> Result:
    log(f"== {workload.name}: preparing {ctx.rows} rows")
    try:
        state = workload.prepare(ctx)
    except Exception as exc:
        error = "prepare: " + _failure(f"{workload.name}: prepare", exc)
        return Result(
            workload.name,
            workload.title,
            [Entry(r.name, r.role, r.note, error=error) for r in workload.all_runners()],
        )
    entries: list[Entry] = []
    try:
        for runner in workload.all_runners():
            log(f"{workload.name}: running {runner.name}")
            try:
                datasets.settle_pg(ctx.servers)
                m = runner.run(ctx, state)
            except Exception as exc:
                error = _failure(f"{workload.name}: {runner.name}", exc)
                entries.append(Entry(runner.name, runner.role, runner.note, error=error))
                continue
            log(
                f"{workload.name}: {runner.name}: {m.rows} rows in {m.seconds:.2f}s "
                f"= {m.rows_per_s:,.0f} rows/s, peak rss {m.peak_rss_mb or 0:.0f} MB"
            )
            entries.append(Entry(runner.name, runner.role, runner.note, measurement=m))
    finally:
        if workload.cleanup is not None:
            workload.cleanup(ctx, state)
    return Result(workload.name, workload.title, entries)


def _drop_all(ctx: Context) -> None:
    for db in (ctx.src_db, ctx.dst_db):
        datasets.drop_pg_db(ctx.servers, db)
    datasets.drop_mysql_db(ctx.servers, ctx.src_db)


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    servers = load_servers()
    workloads = [w for w in WORKLOADS if not args.only or w.name in args.only]
    for workload in workloads:  # before prepare, which makes each runner's slot
        workload.runners = [r for r in workload.runners if not any(t in r.name for t in args.skip)]
    tools.ensure(sorted({GNU_TIME, *(t for w in workloads for t in w.tools)}))
    meta: dict[str, Any] = {
        "rows": args.rows,
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": shlex.join(["python", "-m", "bench.run", *sys.argv[1:]]),
        "host": {"cpus": os.cpu_count(), "platform": platform.platform()},
        "versions": _versions(servers, workloads),
    }
    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="cdc-bench-") as tmp:
        ctx = Context(rows=args.rows, servers=servers, prefix=args.prefix, workdir=Path(tmp))
        try:
            for workload in workloads:
                results.append(_run_workload(ctx, workload))
        finally:
            if not args.keep:
                _drop_all(ctx)
    meta["finished_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    path = report.write(results, meta, args.out)
    log(f"report: {path}")
    failed = [e.name for r in results for e in r.entries if e.error]
    if failed:
        log(f"failed runners: {', '.join(failed)}")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
