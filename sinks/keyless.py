"""A keyless table's changes, applied one by one in order: the engine-neutral
half of it (each target's statements: `sinks.postgres.keyless`,
`sinks.mysql.keyless`).

A table without a key of its own (`TableSchema.keyless`) may hold identical
rows, so its changes are never collapsed per key (`sinks.collapse`): an
insert adds a row (a duplicate adds a second one); a delete removes one row
whose every column equals the change's old values, NULL matching NULL; an
update changes one such row. Which of two identical rows is immaterial: they
cannot be told apart. Identical rows share their Kafka key (every column),
so their changes arrive in order in one partition.

A delete or update that finds no such row is a conflict like a missing
key's (`sinks.conflicts`): `delete_missing` is ignored but under `error`;
`update_missing` inserts the new row (`source-wins`), is skipped
(`target-wins`) or is a dead letter (`error`). `last-writer-wins` keeps no
row versions, having no key to keep them by: it applies as `source-wins`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Protocol, TypeVar

from cdc.applier import ApplyResult
from cdc.changes import Change, KeyState
from cdc.events import Op
from cdc.schemas import TableSchema
from sinks.conflicts import Action, decide
from sinks.schema_changes import Evolution

Row = TypeVar("Row")
_NEW_ROW_OPS = (Op.CREATE, Op.READ)
# what a target's conversion raises for a value its column cannot hold
VALUE_ERRORS = (ValueError, TypeError, ArithmeticError)


class KeylessTable(Protocol[Row]):
    """One target table's statements for keyless changes."""

    @property
    def name(self) -> str:
        """schema.table (database.table) on the target: what row counts name."""
        ...

    def row(self, schema: TableSchema, values: dict[str, Any]) -> Row:
        """`values` (wire form, columns of `schema`) as the target writes them;
        raises one of `VALUE_ERRORS` for a value its column cannot hold."""
        ...

    def insert(self, rows: list[Row]) -> None: ...

    def delete(self, old: Row) -> bool:
        """Delete one row equal to `old` in every column; whether there was one."""
        ...

    def update(self, old: Row, new: Row) -> bool:
        """Set `new`'s columns in one row equal to `old`; whether there was one."""
        ...


def old_values(state: KeyState, evolution: Evolution | None) -> dict[str, Any]:
    """The values the source's row had before the change, under the column
    names of `state.schema`: a state upgraded from an older schema version
    (`sinks.schema_changes.upgrade`) has its renamed and dropped columns
    followed, as its new row has."""
    change = state.first
    old = change.before if change.before is not None else change.key or {}
    if evolution is None or state.schema is change.schema:
        return old
    renamed, skipped = evolution.renamed, evolution.skipped
    return {renamed.get(n, n): v for n, v in old.items() if n not in skipped}


def apply(
    table: KeylessTable[Row],
    states: Iterable[KeyState],
    policy: str,
    evolution: Evolution | None,
    result: ApplyResult,
) -> None:
    """Apply a keyless table batch's changes in order; counts rows, conflicts
    and dead letters into `result`. Consecutive inserts go as one."""
    inserts: list[Row] = []

    def flush() -> None:
        if inserts:
            table.insert(inserts)
            inserts.clear()

    for state in states:
        change = state.first
        new_row = change.op in _NEW_ROW_OPS
        if state.row is not None and not state.complete and new_row:
            result.dead.append((change, "a new row without all its columns"))
            continue
        try:
            new = None if state.row is None else table.row(state.schema, state.row)
            old = None if new_row else table.row(state.schema, old_values(state, evolution))
        except VALUE_ERRORS as exc:
            result.dead.append((change, f"value: {exc}"))
            continue
        if old is None:
            assert new is not None
            inserts.append(new)
            _applied(table, state, "c", result)
            continue
        flush()
        found = table.delete(old) if new is None else table.update(old, new)
        if found:
            _applied(table, state, "d" if new is None else "u", result)
        elif _insert_instead(change, state, policy, result):
            assert new is not None
            inserts.append(new)
            _applied(table, state, "c", result)
    flush()


def _applied(table: KeylessTable[Any], state: KeyState, op: str, result: ApplyResult) -> None:
    result.rows[(table.name, op)] += 1
    result.last_ts_ms = max(result.last_ts_ms, state.ts_ms)


def _insert_instead(change: Change, state: KeyState, policy: str, result: ApplyResult) -> bool:
    """A delete or update that found no row: the conflict counted, and
    whether its policy inserts the update's row instead."""
    kind = "delete_missing" if state.row is None else "update_missing"
    source = f"{state.schema.schema}.{state.schema.table}"
    result.conflicts[(source, kind)] += 1
    old = change.before if change.before is not None else change.key or {}
    result.conflict_keys.append((source, kind, tuple(old.values())))
    action = decide(policy, kind)
    if action is Action.DEAD_LETTER:
        result.dead.append((change, f"conflict: {kind}"))
        return False
    if action is Action.SKIP or state.row is None:
        return False
    if not state.complete:
        result.dead.append((change, "update of a missing row without all its columns"))
        return False
    return True
