"""Child process: decode a binlog range with `cdc.mysql.rows` (our decoder).

Same stream and framing as :mod:`bench.mysql_stock_reader` (python-mysql-replication's
``BinLogStreamReader``), but the row images are decoded by ``RowDecoders`` into
``(before, after)`` dicts of exact Python values; ``event.rows`` is never touched.
Prints ``{"rows": N}`` on stdout.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import sys

from pymysqlreplication import BinLogStreamReader
from pymysqlreplication.event import XidEvent
from pymysqlreplication.row_event import TableMapEvent, WriteRowsEvent

from bench.servers import load_servers, mysql_settings
from cdc.mysql.rows import RowDecoders


def decode(*, start: tuple[str, int], end: tuple[str, int], schema: str, table: str) -> int:
    stream = BinLogStreamReader(
        connection_settings=mysql_settings(load_servers()),
        # Unique among the server's replicas; two readers sharing an id kick each other off.
        server_id=3_500_000_000 + os.getpid(),
        log_file=start[0],
        log_pos=start[1],
        resume_stream=True,
        blocking=False,
        only_events=[TableMapEvent, WriteRowsEvent, XidEvent],
        enable_logging=False,
    )
    decoders = RowDecoders()
    rows = 0
    try:
        for event in stream:
            if isinstance(event, TableMapEvent):
                decoders.table_map(event)
            elif (
                isinstance(event, WriteRowsEvent)
                and event.schema == schema
                and event.table == table
            ):
                rows += len(decoders.decode(event))
            # Binlog names are zero-padded, so (file, pos) tuples order like the log itself.
            if (stream.log_file, stream.log_pos) >= end:
                break
    finally:
        stream.close()
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--start-file", required=True)
    parser.add_argument("--start-pos", type=int, required=True)
    parser.add_argument("--end-file", required=True)
    parser.add_argument("--end-pos", type=int, required=True)
    parser.add_argument("--schema", required=True)
    parser.add_argument("--table", required=True)
    parser.add_argument("--profile", help="write cProfile stats to this file")
    args = parser.parse_args(argv)
    kwargs = {
        "start": (args.start_file, args.start_pos),
        "end": (args.end_file, args.end_pos),
        "schema": args.schema,
        "table": args.table,
    }
    if args.profile:
        profiler = cProfile.Profile()
        rows = profiler.runcall(decode, **kwargs)
        profiler.dump_stats(args.profile)
    else:
        rows = decode(**kwargs)
    sys.stdout.write(json.dumps({"rows": rows}) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
