"""What a table batch does to the target: the engine-neutral half of an applier.

Given which keys the target already holds (one query per table per batch)
and, under last-writer-wins, which of them a newer change wrote, each key's
net state becomes a delete, an upsert, a partial update or a dead letter by
the policies of `sinks.conflicts`. Appliers only turn the plan into SQL, so
PostgreSQL and MySQL targets resolve conflicts identically.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from cdc.applier import ApplyResult
from cdc.changes import KeyState, KeyValues
from sinks.conflicts import Action, conflict_kind, decide

LAST_WRITER_WINS = "last-writer-wins"


@dataclass
class TablePlan:
    deletes: list[KeyValues] = field(default_factory=list)
    # whole rows of keys the target does not hold (an applier may COPY them in)
    creates: list[dict[str, Any]] = field(default_factory=list)
    upserts: list[dict[str, Any]] = field(default_factory=list)  # whole rows of keys it holds
    # rows without their unchanged columns, by column set (one statement each)
    partial: dict[tuple[str, ...], list[dict[str, Any]]] = field(default_factory=dict)
    # what was applied, for the last-writer-wins versions
    applied: list[tuple[KeyValues, KeyState]] = field(default_factory=list)


def plan_table(
    keys: Sequence[tuple[KeyValues, KeyState]],
    existing: set[KeyValues],
    newer: set[KeyValues],
    policy: str,
    target_name: str,
    result: ApplyResult,
) -> TablePlan:
    """Decide every key; counts rows, conflicts and dead letters into `result`.

    `target_name` labels the row counts; conflicts are labelled by the
    source table, as the operator configured the policy by that name."""
    plan = TablePlan()
    if not keys:
        return plan
    schema = keys[0][1].schema
    source_name = f"{schema.schema}.{schema.table}"
    for key, state in keys:
        exists = key in existing
        kind = conflict_kind(state, exists)
        action = decide(policy, kind, key in newer)
        if kind is not None or action is Action.SKIP:
            result.conflicts[(source_name, kind or "older")] += 1
            result.conflict_keys.append((source_name, kind or "older", key))
        if action is Action.DEAD_LETTER:
            result.dead.append((state.first, f"conflict: {kind}"))
            continue
        if action is Action.SKIP:
            continue
        if state.row is None:
            if exists:
                plan.deletes.append(key)
                result.rows[(target_name, "d")] += 1
        elif state.complete:
            (plan.upserts if exists else plan.creates).append(state.row)
            result.rows[(target_name, "u" if exists else "c")] += 1
        elif exists:
            plan.partial.setdefault(tuple(state.row), []).append(state.row)
            result.rows[(target_name, "u")] += 1
        else:
            # an update without its unchanged TOAST values cannot create the row
            result.dead.append((state.first, "update of a missing row without all its columns"))
            continue
        plan.applied.append((key, state))
        result.last_ts_ms = max(result.last_ts_ms, state.ts_ms)
    return plan


def row_key(key: KeyValues) -> str:
    """A key's text in `cdc_row_versions` (wire values, so engine-neutral)."""
    return orjson.dumps(list(key)).decode()


def newer_keys(
    stored: Iterable[tuple[str, int, int, int]],
    by_text: dict[str, tuple[KeyValues, KeyState]],
) -> set[KeyValues]:
    """Keys whose stored version (row_key, ts_ms, partition, offset) is newer
    than this batch's change of them. An equal version is the same change
    applied again (a replay): it applies, which restores a row wiped since."""
    newer = set()
    for text, ts_ms, partition, offset in stored:
        found = by_text.get(text)
        if found is not None and (ts_ms, partition, offset) > (found[1].ts_ms, *found[1].offset):
            newer.add(found[0])
    return newer
