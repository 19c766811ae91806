"""A batch's changes collapsed per key.

Inside one batch only each key's final state matters to the target, so a
batch is reduced to one row (or one delete) per key before it is applied. A
truncate is a barrier: what came before it and what came after it are
applied in that order.

A keyless table (`TableSchema.keyless`) is not collapsed: identical rows are
legal there, so each of its changes stays a state of its own, in order
(`sinks.keyless` applies them). A table whose changes turn from keyless to
keyed or back inside a batch (a primary key added on the source) starts a
new step there, so each table batch is one or the other.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from cdc.changes import Change, KeyState, TableBatch
from cdc.events import Op


def collapse(changes: Iterable[Change]) -> Iterator[list[TableBatch]]:
    """Steps of table batches; a truncate starts a new step for its table."""
    step: dict[tuple[str, str], TableBatch] = {}
    keyless: dict[tuple[str, str], bool] = {}  # whether each batch of the step is keyless
    for change in changes:
        batch = step.get(change.target)
        if change.op is Op.TRUNCATE:
            if batch is not None:
                yield list(step.values())
                step, keyless = {}, {}
            step[change.target] = TableBatch(change.target, truncate=True)
            continue
        if batch is None or not batch.keys:
            if batch is None:
                batch = step[change.target] = TableBatch(change.target)
            keyless[change.target] = change.schema.keyless
        elif keyless[change.target] is not change.schema.keyless:
            yield list(step.values())
            batch = TableBatch(change.target)
            step, keyless = {change.target: batch}, {change.target: change.schema.keyless}
        position = (change.partition, change.offset)
        if change.schema.keyless:
            # the change's place in the batch stands in for a key: a batch is
            # all keyless, so no real key can meet it
            row = None if change.op is Op.DELETE else change.after or {}
            batch.keys[(len(batch.keys),)] = KeyState(
                change.schema, change.op, row, not change.unchanged, change.ts_ms, position, change
            )
            continue
        key = tuple(change.key.values())  # type: ignore[union-attr]  # a row change has a key
        state = batch.keys.get(key)
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
        if not complete:
            batch.partial = True
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
