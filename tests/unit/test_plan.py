"""What a batch leaves on the target under each conflict policy: the target
row, the conflicts counted (by kind, with their keys, as `cdc_sink_conflicts`
and the `conflict` log lines show them) and the changes dead-lettered, for
every policy and situation of the README's table. The plan (`sinks.plan`)
is run against a table kept in a dict the way both appliers run it: each
step's truncate first, one existence query per table batch, deletes, whole
row upserts, partial rows writing only their columns, versions recorded
for last-writer-wins."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field, replace
from typing import Any

import pytest

from cdc.applier import ApplyResult
from cdc.changes import Change, KeyState
from cdc.events import Op
from cdc.schemas import Column, TableSchema
from sinks.collapse import collapse
from sinks.plan import LAST_WRITER_WINS, newer_keys, plan_table, row_key
from sinks.replays import Position, ReplayGuard

SCHEMA = TableSchema(
    "postgresql",
    "public",
    "items",
    (Column("id", "integer"), Column("name", "text"), Column("doc", "text")),
    ("id",),
)
SOURCE = "public.items"  # conflicts are counted under the source table's name
POLICIES = ("source-wins", "target-wins", "last-writer-wins", "error")
Row = dict[str, Any]


class Target:
    """One target table, keyed by id, and its last-writer-wins versions."""

    def __init__(self, *rows: Row, target: tuple[str, str] = ("public", "items")) -> None:
        self.rows = {row["id"]: dict(row) for row in rows}
        self.versions: dict[str, tuple[int, int, int]] = {}  # row_key -> (ts_ms, partition, offset)
        self.name = ".".join(target)
        self.replays = ReplayGuard()  # as a sink worker keeps it across batches

    def apply(self, changes: list[Change], policy: str) -> ApplyResult:
        result = ApplyResult()
        steps = list(collapse(changes))
        self.replays.mark(steps, position_of)
        for step in steps:
            for batch in step:
                if batch.truncate:
                    self.rows.clear()
                    result.rows[(self.name, "t")] += 1
                keys = list(batch.keys.items())
                existing = {key for key, _ in keys if key[0] in self.rows}
                newer: set[Any] = set()
                if policy == LAST_WRITER_WINS:
                    by_text = {row_key(key): (key, state) for key, state in keys}
                    stored = [(t, *v) for t, v in self.versions.items() if t in by_text]
                    newer = newer_keys(stored, by_text)
                plan = plan_table(keys, existing, newer, policy, self.name, result)
                for key in plan.deletes:
                    del self.rows[key[0]]
                assert not any(row["id"] in self.rows for row in plan.creates)
                assert all(row["id"] in self.rows for row in plan.upserts)
                for row in [*plan.creates, *plan.upserts]:  # a column it lacks is NULL
                    self.rows[row["id"]] = {c: row.get(c) for c in SCHEMA.column_names}
                for rows in plan.partial.values():
                    for row in rows:
                        self.rows[row["id"]].update(row)
                if policy == LAST_WRITER_WINS:
                    for key, state in plan.applied:
                        self.versions[row_key(key)] = (state.ts_ms, *state.offset)
        self.replays.record(steps, position_of)
        return result


_offsets = itertools.count(100)
# source positions (LSNs) of the changes given one (`at`), by Kafka offset
POSITIONS: dict[int, Position] = {}


def position_of(state: KeyState) -> Position | None:
    return POSITIONS.get(state.offset[1])


def change(
    op: Op, row_id: int | None = None, unchanged: tuple[str, ...] = (), **values: Any
) -> Change:
    """A change as the sink decodes it; `values` beyond the key make its row
    (less the `unchanged` columns, as a source leaves them out)."""
    offset = next(_offsets)
    key = None if row_id is None else {"id": row_id}
    after = None
    if op not in (Op.DELETE, Op.TRUNCATE):
        after = {"id": row_id, **{k: v for k, v in values.items() if k not in unchanged}}
    before = {"id": row_id} if op in (Op.UPDATE, Op.DELETE) else None
    return Change(
        op=op,
        schema=SCHEMA,
        target=("public", "items"),
        key=key,
        before=before,
        after=after,
        unchanged=unchanged,
        ts_ms=1_700_000_000_000 + offset,
        topic="p.public.items",
        partition=0,
        offset=offset,
    )


def insert(row_id: int, name: str, doc: str = "doc") -> Change:
    return change(Op.CREATE, row_id, name=name, doc=doc)


def update(row_id: int, name: str, doc: str = "doc", unchanged: tuple[str, ...] = ()) -> Change:
    return change(Op.UPDATE, row_id, unchanged, name=name, doc=doc)


def delete(row_id: int) -> Change:
    return change(Op.DELETE, row_id)


def read(row_id: int, name: str, doc: str = "doc") -> Change:
    return change(Op.READ, row_id, name=name, doc=doc)


def truncate() -> Change:
    return change(Op.TRUNCATE)


def row(row_id: int, name: str, doc: str | None = "doc") -> Row:
    return {"id": row_id, "name": name, "doc": doc}


@dataclass(frozen=True)
class Outcome:
    rows: list[Row]  # the whole target table after the batch
    conflicts: dict[str, list[int]] = field(default_factory=dict)  # kind -> keys counted
    dead: list[tuple[int, str]] = field(default_factory=list)  # (key, reason) dead-lettered


@dataclass(frozen=True)
class Situation:
    target: list[Row]  # the target table before the batch
    changes: list[Change]
    outcomes: dict[str, Outcome]  # by policy

    @classmethod
    def same(cls, target: list[Row], changes: list[Change], outcome: Outcome) -> Situation:
        """A situation every policy resolves alike."""
        return cls(target, changes, dict.fromkeys(POLICIES, outcome))


SITUATIONS = {
    # -- no conflict: every policy applies the change ----------------------
    "insert of a new row": Situation.same([], [insert(1, "src")], Outcome([row(1, "src")])),
    "update of an existing row": Situation.same(
        [row(1, "old")], [update(1, "src")], Outcome([row(1, "src")])
    ),
    "delete of an existing row": Situation.same([row(1, "old")], [delete(1)], Outcome([])),
    "snapshot read over an existing row is the baseline": Situation.same(
        [row(1, "target")], [read(1, "src")], Outcome([row(1, "src")])
    ),
    "insert then delete of a new row in one batch": Situation.same(
        [], [insert(1, "src"), delete(1)], Outcome([])
    ),
    # -- the three conflicts ------------------------------------------------
    "insert over an existing row": Situation(
        [row(1, "target")],
        [insert(1, "src")],
        {
            "source-wins": Outcome([row(1, "src")], {"insert_exists": [1]}),
            "target-wins": Outcome([row(1, "target")], {"insert_exists": [1]}),
            "last-writer-wins": Outcome([row(1, "src")], {"insert_exists": [1]}),
            "error": Outcome(
                [row(1, "target")], {"insert_exists": [1]}, [(1, "conflict: insert_exists")]
            ),
        },
    ),
    "update of a missing row": Situation(
        [],
        [update(2, "src")],
        {
            "source-wins": Outcome([row(2, "src")], {"update_missing": [2]}),
            "target-wins": Outcome([], {"update_missing": [2]}),
            "last-writer-wins": Outcome([row(2, "src")], {"update_missing": [2]}),
            "error": Outcome([], {"update_missing": [2]}, [(2, "conflict: update_missing")]),
        },
    ),
    "delete of a missing row": Situation(
        [row(1, "other")],
        [delete(3)],
        {
            "source-wins": Outcome([row(1, "other")], {"delete_missing": [3]}),
            "target-wins": Outcome([row(1, "other")], {"delete_missing": [3]}),
            "last-writer-wins": Outcome([row(1, "other")], {"delete_missing": [3]}),
            "error": Outcome(
                [row(1, "other")], {"delete_missing": [3]}, [(3, "conflict: delete_missing")]
            ),
        },
    ),
    # a key's first change in the batch is what met the target row
    "insert over an existing row, then its delete": Situation(
        [row(1, "target")],
        [insert(1, "src"), delete(1)],
        {
            "source-wins": Outcome([], {"insert_exists": [1]}),
            "target-wins": Outcome([row(1, "target")], {"insert_exists": [1]}),
            "last-writer-wins": Outcome([], {"insert_exists": [1]}),
            "error": Outcome(
                [row(1, "target")], {"insert_exists": [1]}, [(1, "conflict: insert_exists")]
            ),
        },
    ),
    "update of a missing row, then its delete": Situation(
        [],
        [update(2, "src"), delete(2)],
        {
            "source-wins": Outcome([], {"update_missing": [2]}),
            "target-wins": Outcome([], {"update_missing": [2]}),
            "last-writer-wins": Outcome([], {"update_missing": [2]}),
            "error": Outcome([], {"update_missing": [2]}, [(2, "conflict: update_missing")]),
        },
    ),
    # -- partial rows: unchanged TOAST columns left out by the source -------
    "partial update of an existing row keeps the columns left out": Situation.same(
        [row(1, "old", "big toast")],
        [update(1, "src", unchanged=("doc",))],
        Outcome([row(1, "src", "big toast")]),
    ),
    "partial updates of one row in one batch add up": Situation.same(
        [row(1, "old", "big toast")],
        [update(1, "first", unchanged=("doc",)), update(1, "second", unchanged=("doc",))],
        Outcome([row(1, "second", "big toast")]),
    ),
    "insert then partial update in one batch is a whole row": Situation.same(
        [],
        [insert(1, "src", "from insert"), update(1, "src2", unchanged=("doc",))],
        Outcome([row(1, "src2", "from insert")]),
    ),
    "partial update of a missing row": Situation(
        [],
        [update(2, "src", unchanged=("doc",))],
        {
            # the row cannot be created without the columns left out
            "source-wins": Outcome(
                [],
                {"update_missing": [2]},
                [(2, "update of a missing row without all its columns")],
            ),
            "target-wins": Outcome([], {"update_missing": [2]}),
            "last-writer-wins": Outcome(
                [],
                {"update_missing": [2]},
                [(2, "update of a missing row without all its columns")],
            ),
            "error": Outcome([], {"update_missing": [2]}, [(2, "conflict: update_missing")]),
        },
    ),
    # -- truncate barriers: before it and after it apply in that order ------
    "changes before a truncate are gone after it": Situation.same(
        [row(1, "old")],
        [update(1, "src"), insert(2, "src"), truncate(), insert(3, "src")],
        Outcome([row(3, "src")]),
    ),
    "an insert after a truncate meets no row": Situation.same(
        [row(1, "target")], [truncate(), insert(1, "src")], Outcome([row(1, "src")])
    ),
    "a conflict before a truncate still counts": Situation(
        [row(1, "target")],
        [insert(1, "src"), truncate(), insert(1, "again")],
        {
            policy: Outcome(
                [row(1, "again")],
                {"insert_exists": [1]},
                [(1, "conflict: insert_exists")] if policy == "error" else [],
            )
            for policy in POLICIES
        },
    ),
}


@pytest.mark.parametrize(("situation", "policy"), list(itertools.product(SITUATIONS, POLICIES)))
def test_each_policy_in_each_situation(situation: str, policy: str) -> None:
    case = SITUATIONS[situation]
    wanted = case.outcomes[policy]
    target = Target(*case.target)

    result = target.apply(case.changes, policy)

    assert sorted(target.rows.values(), key=lambda r: r["id"]) == wanted.rows
    counted = {kind: n for (table, kind), n in result.conflicts.items() if table == SOURCE}
    assert counted == {kind: len(keys) for kind, keys in wanted.conflicts.items()}
    assert sorted((kind, key) for _, kind, key in result.conflict_keys) == sorted(
        (kind, (key,)) for kind, keys in wanted.conflicts.items() for key in keys
    )
    dead = [(c.key_values[0], reason) for c, reason in result.dead]
    assert dead == wanted.dead


def test_a_dead_letter_is_the_first_change_of_its_key() -> None:
    """The dead-letter topic gets the message that met the conflict."""
    first, second = update(2, "src"), update(2, "src2")
    result = Target().apply([first, second], "error")
    assert [(c.offset, reason) for c, reason in result.dead] == [
        (first.offset, "conflict: update_missing")
    ]


def test_rows_count_by_target_and_conflicts_by_source() -> None:
    """`cdc_sink_rows` names the table written; conflicts name the source
    table, as the policy was configured under that name."""
    target = Target(row(1, "target"), row(2, "old"), target=("archive", "items_copy"))
    changes = [insert(1, "src"), update(2, "src"), delete(2), insert(3, "src"), update(4, "x")]
    result = target.apply(changes, "source-wins")
    assert dict(result.rows) == {
        ("archive.items_copy", "u"): 1,  # the insert over row 1 overwrote it
        ("archive.items_copy", "d"): 1,
        ("archive.items_copy", "c"): 2,  # row 3, and row 4 inserted by its update
    }
    assert dict(result.conflicts) == {(SOURCE, "insert_exists"): 1, (SOURCE, "update_missing"): 1}
    assert result.last_ts_ms == changes[-1].ts_ms


# -- last-writer-wins: the stored version of a row decides ------------------


@pytest.mark.parametrize(
    ("stored", "changes", "rows", "conflicts"),
    [
        # a newer writer's row stays, counted as `older`
        (+1, [update(4, "src")], [row(4, "newer-writer")], {"older": 1}),
        (+1, [delete(4)], [row(4, "newer-writer")], {"older": 1}),
        # an insert meeting it counts once, as what it met
        (+1, [insert(4, "src")], [row(4, "newer-writer")], {"insert_exists": 1}),
        # the same version again is a replay: it applies, restoring the row
        (0, [update(4, "src")], [row(4, "src")], {}),
        # an older stored version loses
        (-1, [update(4, "src")], [row(4, "src")], {}),
        (-1, [delete(4)], [], {}),
    ],
)
def test_last_writer_wins_by_stored_version(
    stored: int, changes: list[Change], rows: list[Row], conflicts: dict[str, int]
) -> None:
    target = Target(row(4, "newer-writer"))
    last = changes[-1]
    target.versions[row_key((4,))] = (last.ts_ms, last.partition, last.offset + stored)
    result = target.apply(changes, LAST_WRITER_WINS)
    assert list(target.rows.values()) == rows
    assert {kind: n for (_, kind), n in result.conflicts.items()} == conflicts
    assert result.dead == []


def test_last_writer_wins_records_the_version_it_applied() -> None:
    target = Target(row(4, "old"))
    target.versions[row_key((4,))] = (1, 0, 0)
    newer = update(4, "src")
    target.apply([newer], LAST_WRITER_WINS)
    assert target.versions[row_key((4,))] == (newer.ts_ms, newer.partition, newer.offset)
    older = update(4, "late")
    older.ts_ms = 1  # committed before what the target holds
    result = target.apply([older], LAST_WRITER_WINS)
    assert target.rows[4]["name"] == "src"
    assert target.versions[row_key((4,))] == (newer.ts_ms, newer.partition, newer.offset)
    assert dict(result.conflicts) == {(SOURCE, "older"): 1}


# -- replays: a restarted source publishes again what its server had not confirmed


def at(lsn: int, change: Change) -> Change:
    """`change` at source position `lsn`."""
    POSITIONS[change.offset] = lsn
    return change


def again(change: Change) -> Change:
    """`change` published again: a later offset, the same commit time and position."""
    copy = replace(change, offset=next(_offsets))
    POSITIONS[copy.offset] = POSITIONS[change.offset]
    return copy


def first_pass(target: Target, policy: str) -> tuple[Change, Change]:
    """Row 1 inserted, updated leaving its TOASTed `doc` out, deleted, each in a
    batch of its own; the update and the delete, for a replay."""
    target.apply([at(100, insert(1, "src", "big toast"))], policy)
    changed = at(200, update(1, "src2", unchanged=("doc",)))
    target.apply([changed], policy)
    deleted = at(300, delete(1))
    target.apply([deleted], policy)
    assert target.rows == {}
    return changed, deleted


def outcome(result: ApplyResult) -> tuple[dict[str, list[int]], list[tuple[int, str]]]:
    """Conflicts (kind -> keys) and dead letters (key, reason) of one apply."""
    conflicts: dict[str, list[int]] = {}
    for _, kind, key in result.conflict_keys:
        conflicts.setdefault(kind, []).append(key[0])
    assert {kind: len(keys) for kind, keys in conflicts.items()} == {
        kind: n for (_, kind), n in result.conflicts.items()
    }
    return conflicts, [(c.key_values[0], reason) for c, reason in result.dead]


MISSING = "update of a missing row without all its columns"
# a partial update of a row the target lacks, as before replays were told apart
UPDATE_MISSING = {
    "source-wins": ({"update_missing": [2]}, [(2, MISSING)]),
    "target-wins": ({"update_missing": [2]}, []),
    "last-writer-wins": ({"update_missing": [2]}, [(2, MISSING)]),
    "error": ({"update_missing": [2]}, [(2, "conflict: update_missing")]),
}


@pytest.mark.parametrize("policy", POLICIES)
def test_a_replayed_partial_update_of_a_row_deleted_since_is_skipped(policy: str) -> None:
    target = Target()
    changed, deleted = first_pass(target, policy)

    replayed = target.apply([again(changed)], policy)
    replayed_delete = target.apply([again(deleted)], policy)

    assert target.rows == {}
    # skipped and counted, or a dead letter under `error` as any conflict there
    dead = [(1, "conflict: replayed")] if policy == "error" else []
    assert outcome(replayed) == ({"replayed": [1]}, dead)
    dead = [(1, "conflict: delete_missing")] if policy == "error" else []
    assert outcome(replayed_delete) == ({"delete_missing": [1]}, dead)


@pytest.mark.parametrize("policy", POLICIES)
@pytest.mark.parametrize(
    "lsn",
    [
        400,  # after everything applied
        # before the delete applied last: a long transaction, committed after it
        # (a partition's highest position applied would take it for a replay)
        150,
    ],
)
def test_a_partial_update_of_a_row_never_there_is_no_replay(policy: str, lsn: int) -> None:
    target = Target()
    first_pass(target, policy)

    result = target.apply([at(lsn, update(2, "src", unchanged=("doc",)))], policy)

    assert target.rows == {}
    assert outcome(result) == UPDATE_MISSING[policy]


@pytest.mark.parametrize("policy", POLICIES)
def test_a_partial_update_after_its_rows_delete_is_no_replay(policy: str) -> None:
    """The row inserted again after the delete, but the insert never reached the
    target (dead-lettered, a filter): a missing row, not a replay."""
    target = Target()
    first_pass(target, policy)

    result = target.apply([at(500, update(1, "src3", unchanged=("doc",)))], policy)

    assert target.rows == {}
    wanted = UPDATE_MISSING[policy]
    assert outcome(result) == (
        {kind: [1] for kind in wanted[0]},
        [(1, reason) for _, reason in wanted[1]],
    )


def test_a_replay_with_its_delete_in_one_batch_needs_no_telling() -> None:
    """The replayed update and delete of one batch are one delete of a missing row."""
    target = Target()
    changed, deleted = first_pass(target, "source-wins")
    result = target.apply([again(changed), again(deleted)], "source-wins")
    assert target.rows == {}
    assert outcome(result) == ({"update_missing": [1]}, [])


def test_the_delete_of_an_update_and_delete_in_one_batch_is_remembered() -> None:
    """The key's state names its first change, the update: the delete's later
    position is the one remembered."""
    target = Target()
    target.apply([at(100, insert(1, "src", "big toast"))], "source-wins")
    changed = at(200, update(1, "src2", unchanged=("doc",)))
    target.apply([changed, at(300, delete(1))], "source-wins")
    result = target.apply([again(changed)], "source-wins")
    assert outcome(result) == ({"replayed": [1]}, [])


def test_a_worker_that_forgot_the_delete_dead_letters_the_replay_as_before() -> None:
    """A new partition assignment (or a sink restart) forgets what it applied."""
    target = Target()
    changed, _ = first_pass(target, "source-wins")
    target.replays.clear()
    result = target.apply([again(changed)], "source-wins")
    assert outcome(result) == ({"update_missing": [1]}, [(1, MISSING)])


def test_the_oldest_deletes_are_forgotten_past_the_limit() -> None:
    target = Target()
    target.replays = ReplayGuard(limit=4)  # two generations of two keys
    changed = {}
    for n, key in enumerate(range(1, 6)):
        lsn = 1000 * (n + 1)
        target.apply([at(lsn, insert(key, "src"))], "source-wins")
        changed[key] = at(lsn + 1, update(key, "src2", unchanged=("doc",)))
        target.apply([changed[key]], "source-wins")
        target.apply([at(lsn + 2, delete(key))], "source-wins")
    # keys 1 and 2 went with the first generation; 3 and 4 are the older one, 5 the newer
    result = target.apply([again(changed[k]) for k in range(1, 6)], "source-wins")
    assert outcome(result) == (
        {"update_missing": [1, 2], "replayed": [3, 4, 5]},
        [(1, MISSING), (2, MISSING)],
    )
