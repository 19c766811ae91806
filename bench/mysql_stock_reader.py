"""Child process: decode a binlog range with stock python-mysql-replication.

Run by :mod:`bench.mysql_decoding` as its own process so its wall time and peak
RSS are measured exactly like the C tool's. Prints ``{"rows": N}`` on stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from pymysqlreplication import BinLogStreamReader
from pymysqlreplication.event import XidEvent
from pymysqlreplication.row_event import DeleteRowsEvent, UpdateRowsEvent, WriteRowsEvent

from bench.servers import load_servers, mysql_settings

# every row change counts: an update's (before, after) pair is one row
_ROWS = (WriteRowsEvent, UpdateRowsEvent, DeleteRowsEvent)


def decode(*, start: tuple[str, int], end: tuple[str, int], schema: str, table: str) -> int:
    stream = BinLogStreamReader(
        connection_settings=mysql_settings(load_servers()),
        # Unique among the server's replicas; two readers sharing an id kick each other off.
        server_id=3_000_000_000 + os.getpid(),
        log_file=start[0],
        log_pos=start[1],
        resume_stream=True,
        blocking=False,
        only_events=[WriteRowsEvent, UpdateRowsEvent, DeleteRowsEvent, XidEvent],
        enable_logging=False,
    )
    rows = 0
    try:
        for event in stream:
            if isinstance(event, _ROWS) and event.schema == schema and event.table == table:
                # .rows is where the library decodes the row images.
                rows += len(event.rows)
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
    args = parser.parse_args(argv)
    rows = decode(
        start=(args.start_file, args.start_pos),
        end=(args.end_file, args.end_pos),
        schema=args.schema,
        table=args.table,
    )
    sys.stdout.write(json.dumps({"rows": rows}) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
