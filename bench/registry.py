"""The workloads ``bench.run`` knows, in run order.

Decoding runs first: its prepare step creates the slots before loading the
source, and the copy workload then reuses the loaded sources.
"""

from __future__ import annotations

from typing import Any

from bench import (
    bulk_copy,
    direct_copy,
    end_to_end,
    latency,
    mysql_decoding,
    mysql_source,
    oltp,
    pg_decoding,
    pg_source,
    sink_apply,
    sink_mixed,
)
from bench.workloads import Workload

# Our implementations, beside each workload's reference.
pg_decoding.WORKLOAD.runners.append(pg_source.RUNNER)
mysql_decoding.WORKLOAD.runners.append(mysql_source.RUNNER)

WORKLOADS: list[Workload[Any]] = [
    pg_decoding.WORKLOAD,
    mysql_decoding.WORKLOAD,
    oltp.PG_WORKLOAD,
    oltp.MYSQL_WORKLOAD,
    bulk_copy.WORKLOAD,
    direct_copy.PG_WORKLOAD,
    direct_copy.MYSQL_WORKLOAD,
    sink_apply.WORKLOAD,
    sink_mixed.WORKLOAD,
    end_to_end.WORKLOAD,
    *latency.WORKLOADS,
]
