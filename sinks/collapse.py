"""A batch's changes collapsed per key.

Inside one batch only each key's final state matters to the target, so a
batch is reduced to one row (or one delete) per key before it is applied. A
truncate is a barrier: what came before it and what came after it are
applied in that order.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from cdc.changes import Change, KeyState, TableBatch
from cdc.events import Op


def collapse(changes: Iterable[Change]) -> Iterator[list[TableBatch]]:
    """Steps of table batches; a truncate starts a new step for its table."""
    step: dict[tuple[str, str], TableBatch] = {}
    for change in changes:
        batch = step.get(change.target)
        if change.op is Op.TRUNCATE:
            if batch is not None:
                yield list(step.values())
                step = {}
            step[change.target] = TableBatch(change.target, truncate=True)
            continue
        if batch is None:
            batch = step[change.target] = TableBatch(change.target)
        key = tuple(change.key.values())  # type: ignore[union-attr]  # a row change has a key
        state = batch.keys.get(key)
        position = (change.partition, change.offset)
        if state is None and change.op is not Op.DELETE and not change.unchanged:
            # the common case, a key's first change in the batch, with its whole row
            batch.keys[key] = KeyState(
                change.schema, change.op, change.after or {}, True, change.ts_ms, position, change
            )
            continue
        if change.op is Op.DELETE:
            first_op, first = (state.first_op, state.first) if state else (Op.DELETE, change)
            batch.keys[key] = KeyState(
                change.schema, first_op, None, True, change.ts_ms, position, first
            )
            continue
        row = change.after or {}
        complete = not change.unchanged
        if state is not None and state.row is not None and not complete:
            # an earlier change of this batch carried the values this one left out
            row = {**state.row, **row}
            complete = state.complete
        first_op, first = (state.first_op, state.first) if state else (change.op, change)
        batch.keys[key] = KeyState(
            change.schema, first_op, row, complete, change.ts_ms, position, first
        )
    if step:
        yield list(step.values())
