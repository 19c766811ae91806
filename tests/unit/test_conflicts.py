"""The conflict-policy table (README, "Conflict policies"), cell by cell: which
situation is a conflict of which kind, and what each policy then does with
the change. What the target rows end as is in tests/unit/test_plan.py."""

from __future__ import annotations

from itertools import product

import pytest

from cdc.changes import Change, KeyState
from cdc.events import Op
from cdc.schemas import Column, TableSchema
from sinks.conflicts import Action, conflict_kind, decide

SCHEMA = TableSchema("postgresql", "public", "items", (Column("id", "integer"),), ("id",))
POLICIES = ("source-wins", "target-wins", "last-writer-wins", "error")
KINDS = ("insert_exists", "update_missing", "delete_missing", "replayed")

APPLY, SKIP, DEAD = Action.APPLY, Action.SKIP, Action.DEAD_LETTER
# A delete that finds no row changes nothing, whether it runs or is skipped.
IGNORE = frozenset({APPLY, SKIP})
# policy -> kind -> what becomes of the change, as the README's table says:
# overwrite / insert the row: APPLY; keep the target row / skip: SKIP.
TABLE: dict[str, dict[str, Action | frozenset[Action]]] = {
    "source-wins": {
        "insert_exists": APPLY,
        "update_missing": APPLY,
        "delete_missing": IGNORE,
        "replayed": SKIP,
    },
    "target-wins": {
        "insert_exists": SKIP,
        "update_missing": SKIP,
        "delete_missing": IGNORE,
        "replayed": SKIP,
    },
    "last-writer-wins": {
        "insert_exists": APPLY,
        "update_missing": APPLY,
        "delete_missing": IGNORE,
        "replayed": SKIP,
    },
    "error": {
        "insert_exists": DEAD,
        "update_missing": DEAD,
        "delete_missing": DEAD,
        "replayed": DEAD,
    },
}


def state(first_op: Op, replayed: bool = False) -> KeyState:
    """A key's net state; `replayed`: an update without all its columns that
    `sinks.replays` told from a missing row's."""
    row = None if first_op is Op.DELETE else {"id": 1}
    change = Change(first_op, SCHEMA, ("public", "items"), {"id": 1}, None, row, (), 0, "t", 0, 0)
    if not replayed:
        return KeyState(SCHEMA, first_op, row, True, 0, (0, 0), change)
    return KeyState(SCHEMA, first_op, row, False, 0, (0, 0), change, replayed=True)


@pytest.mark.parametrize(
    ("first_op", "exists", "kind"),
    [
        (Op.CREATE, False, None),
        (Op.CREATE, True, "insert_exists"),
        (Op.UPDATE, True, None),
        (Op.UPDATE, False, "update_missing"),
        (Op.DELETE, True, None),
        (Op.DELETE, False, "delete_missing"),
        # snapshot reads are the baseline: never a conflict
        (Op.READ, False, None),
        (Op.READ, True, None),
    ],
)
def test_which_situation_is_a_conflict(first_op: Op, exists: bool, kind: str | None) -> None:
    assert conflict_kind(state(first_op), exists) == kind


@pytest.mark.parametrize(("exists", "kind"), [(False, "replayed"), (True, None)])
def test_a_replayed_partial_update_is_a_conflict_only_where_its_row_is_gone(
    exists: bool, kind: str | None
) -> None:
    """Its row still there (a delete not applied yet), it updates the row as the first time."""
    assert conflict_kind(state(Op.UPDATE, replayed=True), exists) == kind


@pytest.mark.parametrize(("policy", "kind"), list(product(POLICIES, KINDS)))
def test_each_policy_on_each_conflict(policy: str, kind: str) -> None:
    wanted = TABLE[policy][kind]
    decided = decide(policy, kind)
    assert decided in wanted if isinstance(wanted, frozenset) else decided is wanted


@pytest.mark.parametrize("policy", POLICIES)
def test_no_conflict_applies_under_every_policy(policy: str) -> None:
    assert decide(policy, None) is APPLY


@pytest.mark.parametrize("kind", [None, *KINDS])
def test_last_writer_wins_skips_what_a_newer_change_wrote(kind: str | None) -> None:
    assert decide("last-writer-wins", kind, newer_version_exists=True) is SKIP


@pytest.mark.parametrize(
    ("policy", "kind"), list(product(("source-wins", "target-wins", "error"), [None, *KINDS]))
)
def test_versions_matter_to_last_writer_wins_alone(policy: str, kind: str | None) -> None:
    assert decide(policy, kind, newer_version_exists=True) is decide(policy, kind)
