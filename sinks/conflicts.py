"""Conflict policies: what a change does to a target row that changed on its own.

A conflict is a change that finds the target row not as the source had it:
- `insert_exists`: an insert meets an existing row;
- `update_missing`: an update finds no row;
- `delete_missing`: a delete finds no row;
- `older`: (last-writer-wins) the row was written by a newer change;
- `replayed`: an update without all its columns finds no row, and a later
  delete of the row was applied: a restarted source published it again
  (`sinks.replays`). The row is rightly gone, and the update could not
  insert it anyway (as an `update_missing` it is a dead letter wherever the
  policy would apply it, `sinks.plan`).
Snapshot reads (`op: r`) never conflict: they are the baseline.

| policy           | insert_exists | update_missing     | delete_missing | older | replayed    |
|------------------|---------------|--------------------|----------------|-------|-------------|
| source-wins      | overwrite     | insert the row     | ignore         | -     | skip        |
| target-wins      | keep target   | skip               | ignore         | -     | skip        |
| last-writer-wins | overwrite     | insert the row     | ignore         | skip  | skip        |
| error            | dead letter   | dead letter        | dead letter    | -     | dead letter |

Every conflict is counted by table and kind and logged with its key.
"""

from __future__ import annotations

from enum import Enum

from cdc.changes import KeyState
from cdc.events import Op

REPLAYED = "replayed"


class Action(Enum):
    APPLY = "apply"
    SKIP = "skip"
    DEAD_LETTER = "dead_letter"


def conflict_kind(state: KeyState, exists: bool) -> str | None:
    if state.first_op is Op.CREATE and exists:
        return "insert_exists"
    if state.first_op is Op.UPDATE and not exists:
        return REPLAYED if state.replayed else "update_missing"
    if state.first_op is Op.DELETE and not exists:
        return "delete_missing"
    return None


def decide(policy: str, kind: str | None, newer_version_exists: bool = False) -> Action:
    if policy == "last-writer-wins" and newer_version_exists:
        return Action.SKIP
    if kind is None:
        return Action.APPLY
    if policy == "error":
        return Action.DEAD_LETTER
    if kind == REPLAYED:
        return Action.SKIP
    if policy == "target-wins" and kind in {"insert_exists", "update_missing"}:
        return Action.SKIP
    return Action.APPLY
