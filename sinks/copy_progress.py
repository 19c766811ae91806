"""The rows of a direct copy's progress table, `cdc_copy_progress`, as every
target keeps it: one row per key range of a source table (`cdc.bulk.RangeState`),
with the chunks and rows copied so far.

Each target's table: `sinks.postgres.copy_progress`, `sinks.mysql.copy_progress`.
"""

from __future__ import annotations

from typing import Any

import orjson

from cdc.bulk import RangeState

COLUMNS = "table_name, range_index, lower_key, upper_key, last_key, done"
# {table}: the progress table; {now}: the target's current timestamp
RECORD = (
    "UPDATE {table} SET last_key = %s, done = %s, chunks = chunks + 1,"
    " copied_rows = copied_rows + %s, updated_at = {now}"
    " WHERE pipeline = %s AND table_name = %s AND range_index = %s"
)


def state_of(row: tuple[Any, ...]) -> RangeState:
    """A range's state from a row of `COLUMNS`."""
    table, index, lower, upper, last_key, done = row
    last = tuple(orjson.loads(last_key)) if last_key is not None else None
    return RangeState(table, int(index), lower, upper, last, bool(done))


def record_params(pipeline: str, state: RangeState, rows: int) -> tuple[Any, ...]:
    """The parameters of `RECORD`: `state` reached, `rows` more copied."""
    last = orjson.dumps(list(state.last_key)).decode() if state.last_key is not None else None
    return (last, state.done, rows, pipeline, state.table, state.index)


def plan_rows(pipeline: str, ranges: list[RangeState]) -> list[tuple[Any, ...]]:
    """The rows of a new plan: (pipeline, table_name, range_index, lower_key, upper_key)."""
    return [(pipeline, r.table, r.index, r.lower, r.upper) for r in ranges]
