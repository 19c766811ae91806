"""The workloads ``bench.run`` knows, in run order.

Decoding runs first: its prepare step creates the slots before loading the
source, and the copy workload then reuses the loaded sources.
"""

from __future__ import annotations

from typing import Any

from bench import bulk_copy, mysql_decoding, pg_decoding
from bench.workloads import Workload

WORKLOADS: list[Workload[Any]] = [
    pg_decoding.WORKLOAD,
    mysql_decoding.WORKLOAD,
    bulk_copy.WORKLOAD,
]
