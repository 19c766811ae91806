"""RENAME and DROP of a captured PostgreSQL table: which events the source owes,
when they are due, and where they land among the stream's items."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, cast

from cdc.captured_tables import CAPTURED_KEY
from cdc.events import ChangeEvent, EncodedChanges, Op
from cdc.postgres import captured_relations
from cdc.postgres.captured_relations import RELATIONS_KEY, TableEventSent
from cdc.postgres.catalog import PgColumn, PgTable
from cdc.postgres.pgoutput_messages import (
    Begin,
    Commit,
    Insert,
    Relation,
    RelationColumn,
    Truncate,
)
from cdc.postgres.stream_state import StreamState
from cdc.postgres.table_events import Dropped, Gone, Name, Renamed, TableTracker
from cdc.postgres.types import TypeInfo, TypeRegistry
from cdc.schemas import TableSchema
from cdc.source import Checkpoint, StreamItem
from tests.unit.test_captured_tables import MemoryStore

A, B, C = ("public", "a"), ("public", "b"), ("public", "c")
OUTSIDE = ("archive", "a")  # a name source.tables does not select


def selects(schema: str, table: str) -> bool:
    return schema == "public"


def tracker(catalog: dict[int, Name] | None = None) -> TableTracker:
    """A tracker whose catalog lookups answer from `catalog` (empty: every table gone)."""
    names = catalog if catalog is not None else {}
    return TableTracker(selects, names.get)


# -- the decisions ----------------------------------------------------------
def test_a_known_table_under_a_new_selected_name_is_a_rename_before_its_rows() -> None:
    t = tracker()
    t.track(1, A, since=100)
    assert t.relation(1, A, 150) == ([], A)
    assert t.relation(1, B, 200) == ([Renamed(1, A, B, 200)], B)
    assert t.relation(1, B, 300) == ([], B)  # the same name again: nothing more


def test_a_rename_out_of_source_tables_drops_the_old_name_and_then_its_rows() -> None:
    t = tracker()
    t.track(1, A, since=100)
    assert t.relation(1, OUTSIDE, 200) == ([Dropped(1, A, left=True)], None)
    assert not t.active(1)
    assert t.relation(1, OUTSIDE, 300) == ([], None)
    # back under a selected name: still dropped until the scan lets it join with a copy
    assert t.relation(1, C, 400) == ([], None)


def test_a_replayed_relation_under_an_older_name_keeps_the_name_the_sinks_know() -> None:
    t = tracker()
    t.track(1, B, since=500)  # renamed to b at 500, before a restart
    assert t.relation(1, A, 400) == ([], B)
    assert t.relation(1, B, 600) == ([], B)


def test_a_dropped_table_is_due_only_once_the_stream_passes_the_scan() -> None:
    t = tracker()
    t.track(1, A, since=100)
    t.track(2, B, since=100)
    t.observe({2: B}, at=1000)
    assert t.reached(999) == []  # rows of a may still be on their way
    assert t.active(1)
    assert t.reached(1000) == [Dropped(1, A)]
    assert t.reached(2000) == []  # once
    assert not t.active(1)


def test_a_scan_repeating_itself_owes_one_event() -> None:
    t = tracker()
    t.track(1, A, since=100)
    t.observe({}, at=1000)
    t.observe({}, at=2000)
    assert t.reached(5000) == [Dropped(1, A)]


def test_a_quiet_table_renamed_is_renamed_at_the_scan_position() -> None:
    t = tracker()
    t.track(1, A, since=100)
    t.observe({1: B}, at=1000)
    assert t.reached(1200) == [Renamed(1, A, B, 1000)]
    # its next rows come under the new name: already known
    assert t.relation(1, B, 1300) == ([], B)


def test_the_stream_seeing_the_rename_first_settles_the_scan() -> None:
    t = tracker()
    t.track(1, A, since=100)
    t.observe({1: B}, at=1000)
    assert t.relation(1, B, 900) == ([Renamed(1, A, B, 900)], B)
    assert t.reached(5000) == []


def test_a_table_created_again_under_a_captured_name_drops_the_old_one_first() -> None:
    t = tracker(catalog={})  # table 1 is gone
    t.track(1, A, since=100)
    t.track(2, A, since=1000)  # joined by the scan under the same name
    assert t.holds(A, 2)  # its copy waits
    changes, name = t.relation(2, A, 1100)
    assert (changes, name) == ([Dropped(1, A)], A)
    assert not t.holds(A, 2)


def test_a_table_renamed_away_from_a_name_a_new_table_takes_is_a_rename() -> None:
    t = tracker(catalog={1: B})
    t.track(1, A, since=100)
    assert t.relation(2, A, 1100) == ([Renamed(1, A, B, 1100)], A)
    assert t.active(2)


def test_a_partition_of_a_published_table_streams_under_its_own_name_untracked() -> None:
    t = tracker()
    assert t.relation(9, ("archive", "events_2024"), 100) == ([], ("archive", "events_2024"))
    t.observe({}, at=200)
    assert t.reached(300) == []


def test_a_captured_table_known_by_name_only_holds_its_name_until_dropped() -> None:
    t = tracker()
    t.expect(Gone(1000, A))
    t.track(2, A, since=1000)
    assert t.holds(A, 2)
    assert t.reached(1000) == [Dropped(None, A)]
    assert not t.holds(A, 2)


# -- the start --------------------------------------------------------------
def table(oid: int, name: Name) -> PgTable:
    return PgTable(oid, name[0], name[1], (PgColumn("id", 23, -1),), ("id",), "d", frozenset())


def start(
    store: MemoryStore, t: TableTracker, catalog: dict[int, Name], copies: bool = True
) -> list[str]:
    rows = [(oid, *name) for oid, name in catalog.items()]
    tables = [table(oid, name) for oid, name in catalog.items() if selects(*name)]
    return captured_relations.start(store, t, rows, tables, 5000, copies, selects)


def test_a_first_start_records_every_table_by_oid() -> None:
    store, t = MemoryStore(), tracker()
    assert start(store, t, {1: A, 2: B}) == []
    assert captured_relations.load(store) == {1: (A, 5000), 2: (B, 5000)}
    assert store.data[CAPTURED_KEY] == ["public.a", "public.b"]
    assert t.reached(10_000) == []


def test_what_changed_while_the_source_was_down_is_owed_to_the_stream() -> None:
    store = MemoryStore()
    start(store, tracker(), {1: A, 2: B, 3: ("public", "quiet")})
    t = tracker()
    # a renamed to c, b dropped and created again, quiet taken out of source.tables
    added = start(store, t, {1: C, 4: B, 3: ("archive", "quiet")})
    assert added == ["public.b"]  # the new b is copied; c is a, renamed
    assert t.holds(B, 4)  # once the old b's DROP is out
    changes = t.reached(5000)
    assert changes == [
        Renamed(1, A, C, 5000),
        Dropped(2, B),
        Dropped(3, ("public", "quiet"), left=True),
    ]
    assert not t.holds(B, 4)
    # the record keeps the old names until each event is in Kafka
    assert captured_relations.load(store) == {
        1: (A, 5000),
        2: (B, 5000),
        3: (("public", "quiet"), 5000),
    }


def test_a_table_taken_out_of_source_tables_is_no_table_event() -> None:
    store = MemoryStore()
    start(store, tracker(), {1: A, 2: B})
    t = tracker()
    rows = [(1, *A), (2, *B)]
    tables = [table(1, A)]
    captured_relations.start(store, t, rows, tables, 6000, True, lambda s, n: n == "a")
    assert t.reached(10_000) == []
    assert captured_relations.load(store) == {1: (A, 5000)}


def test_a_captured_table_gone_before_the_record_existed_is_dropped_by_name() -> None:
    store = MemoryStore()
    store.put(CAPTURED_KEY, ["public.a", "public.old"])
    t = tracker()
    start(store, t, {1: A})
    assert t.reached(5000) == [Dropped(None, ("public", "old"))]
    # still captured until its DROP is in Kafka
    assert store.data[CAPTURED_KEY] == ["public.a", "public.old"]


def test_each_event_moves_both_records_once_kafka_has_it() -> None:
    store = MemoryStore()
    start(store, tracker(), {1: A, 2: B})
    captured_relations.record_event(store, TableEventSent(7000, A, C, 1))
    captured_relations.record_event(store, TableEventSent(8000, B, None, 2))
    assert captured_relations.load(store) == {1: (C, 7000)}
    assert store.data[CAPTURED_KEY] == ["public.c"]
    # a restart does not take the renamed table for a new one to copy
    t = tracker()
    assert start(store, t, {1: C}) == []
    assert t.reached(10_000) == []
    assert store.data[RELATIONS_KEY] == {"1": {"schema": "public", "table": "c", "since": 7000}}


# -- the stream's items -----------------------------------------------------
class Registry:
    """Every column an int4."""

    def info(self, oid: int, typmod: int = -1) -> TypeInfo:
        return TypeInfo(oid, "integer", "b", oid)

    def converter(self, oid: int) -> Callable[[bytes], Any]:
        return int


def relation(oid: int, name: Name) -> Relation:
    return Relation(oid, name[0], name[1], "d", (RelationColumn("id", 23, -1, True),))


def state_of(t: TableTracker) -> StreamState:
    registry = cast(TypeRegistry, Registry())
    return StreamState(registry, lambda oid: None, "app", 100, t)


def feed(state: StreamState, messages: Iterable[tuple[Any, int]]) -> list[StreamItem]:
    items: list[StreamItem] = []
    for message, lsn in messages:
        if isinstance(message, Insert) and state.tx is not None:
            items += state.batch.add(state.relations[message.relation_id], message, state.tx, lsn)
        else:
            items += state.control(message, lsn)
    return items + state.batch.take()


def tx(xid: int, lsn: int, *changes: Any) -> list[tuple[Any, int]]:
    return [
        (Begin(lsn + 90, 0, xid), lsn),
        *((change, lsn + i) for i, change in enumerate(changes)),
        (Commit(0, lsn + 90, lsn + 99, 0), lsn + 99),
    ]


def summary(items: list[StreamItem]) -> list[Any]:
    out: list[Any] = []
    for item in items:
        if isinstance(item, TableSchema):
            out.append(("schema", item.table))
        elif isinstance(item, ChangeEvent):
            out.append((item.op, item.table, item.after))
        elif isinstance(item, EncodedChanges):
            out.append(("rows", item.table, len(item.messages)))
        elif isinstance(item, Checkpoint):
            kind = type(item.position).__name__
            out.append(("checkpoint", kind))
    return out


def test_a_rename_comes_before_the_rows_under_the_new_name_and_names_the_old_schema() -> None:
    t = tracker()
    t.track(1, A, since=0)
    state = state_of(t)
    items = feed(
        state,
        tx(10, 1000, relation(1, A), Insert(1, (b"1",)))
        + tx(11, 2000, relation(1, B), Insert(1, (b"2",))),
    )
    assert summary(items) == [
        ("schema", "a"),
        ("rows", "a", 1),
        ("checkpoint", "PgPosition"),
        ("schema", "a"),
        (Op.RENAME, "a", {"schema": "public", "table": "b"}),
        ("checkpoint", "TableEventSent"),
        ("schema", "b"),
        ("rows", "b", 1),
        ("checkpoint", "PgPosition"),
    ]
    schemas = [i for i in items if isinstance(i, TableSchema)]
    rename = next(i for i in items if isinstance(i, ChangeEvent))
    assert rename.fingerprint == schemas[0].fingerprint  # the old name's schema
    assert (rename.key, rename.before, rename.txid) == (None, None, 11)


def test_a_drop_found_by_the_scan_waits_for_the_commit_past_it() -> None:
    t = tracker()
    t.track(1, A, since=0)
    state = state_of(t)
    feed(state, tx(10, 1000, relation(1, A), Insert(1, (b"1",))))
    t.observe({}, at=2050)
    # a transaction that ends before the scan's position may still hold rows of a
    early = feed(state, tx(11, 1900, relation(1, A), Insert(1, (b"2",))))
    assert [s for s in summary(early) if s[0] is Op.DROP] == []
    late = feed(state, tx(12, 2000, Insert(1, (b"3",))))  # ends at 2099
    assert summary(late)[-4:] == [
        ("schema", "a"),
        (Op.DROP, "a", None),
        ("checkpoint", "TableEventSent"),
        ("checkpoint", "PgPosition"),
    ]
    assert summary(late)[0] == ("rows", "a", 1)


def test_a_keepalive_between_transactions_delivers_a_drop_that_is_due() -> None:
    t = tracker()
    t.track(1, A, since=0)
    state = state_of(t)
    t.observe({}, at=3000)
    assert list(state.reached(2999)) == []
    items = list(state.reached(3000))
    assert summary(items) == [
        ("schema", "a"),
        (Op.DROP, "a", None),
        ("checkpoint", "TableEventSent"),
    ]
    event = items[1]
    assert isinstance(event, ChangeEvent) and event.ts_ms > 0 and event.txid is None


def test_the_rows_of_a_table_renamed_out_of_source_tables_are_dropped() -> None:
    t = tracker()
    t.track(1, A, since=0)
    t.track(2, B, since=0)
    state = state_of(t)
    items = feed(
        state,
        tx(10, 1000, relation(1, OUTSIDE), Insert(1, (b"1",)), relation(2, B), Insert(2, (b"2",)))
        + tx(11, 2000, Insert(1, (b"3",)), Truncate(0, (1, 2))),
    )
    assert summary(items) == [
        ("schema", "a"),
        (Op.DROP, "a", None),
        ("checkpoint", "TableEventSent"),
        ("schema", "b"),
        ("rows", "b", 1),
        ("checkpoint", "PgPosition"),
        (Op.TRUNCATE, "b", None),  # not of the table that left
        ("checkpoint", "PgPosition"),
    ]
    assert state.left == [1]  # to take out of the publication


def test_a_table_that_left_streams_again_once_it_joins_even_without_a_relation() -> None:
    t = tracker()
    t.track(1, A, since=0)
    state = state_of(t)
    feed(state, tx(10, 1000, relation(1, OUTSIDE), Insert(1, (b"1",))))
    # renamed back: still dropped until the catalog scan lets it join (with a copy)
    assert summary(feed(state, tx(11, 2000, relation(1, C), Insert(1, (b"2",))))) == [
        ("checkpoint", "PgPosition")
    ]
    t.track(1, C, since=3000)
    assert summary(list(state.rejoined(1, C))) == [("schema", "c")]
    # the publication kept it: no Relation message comes before its next rows
    assert summary(feed(state, tx(12, 4000, Insert(1, (b"3",))))) == [
        ("rows", "c", 1),
        ("checkpoint", "PgPosition"),
    ]
