"""The direct copy's orchestration over the `cdc.bulk` protocols, with a reader
and a writer that record what they are asked, and the progress rows' form."""

from __future__ import annotations

from collections.abc import Collection, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field, replace
from typing import Any

from cdc.bulk import (
    BulkWriter,
    Chunk,
    CopyFormat,
    CopySession,
    CopyTable,
    CopyTarget,
    RangeState,
)
from cdc.direct_copy import copy_snapshot
from cdc.events import ChangeEvent, Op
from cdc.postgres.position import PgPosition
from cdc.schemas import Column, TableSchema
from cdc.source import IDLE
from sinks.copy_progress import plan_rows, record_params, state_of

STREAMED = TableSchema("postgresql", "public", "big", (Column("id", "bigint"),), ("id",))
ROWS = TableSchema("postgresql", "public", "odd", (Column("id", "bigint"),), ("id",))


class Progress:
    def __init__(self, stored: list[RangeState] | None) -> None:
        self.stored = stored

    def load(self) -> list[RangeState] | None:
        return self.stored

    def plan(self, ranges: list[RangeState]) -> None:
        self.stored = ranges

    def record(self, state: RangeState, rows: int) -> None:
        raise AssertionError("the writer records progress with the rows it writes")


@dataclass(frozen=True)
class Target:
    types: Mapping[str, str] = field(default_factory=lambda: {"id": "bigint"})
    native: frozenset[str] = frozenset({"id"})

    def session(self, format: CopyFormat) -> AbstractContextManager[CopySession]:
        raise AssertionError("the reader opens the sessions, not the copy")


class Writer:
    def __init__(self, stored: list[RangeState] | None, log: list[Any]) -> None:
        self._progress = Progress(stored)
        self.log = log

    @property
    def progress(self) -> Progress:
        return self._progress

    def prepare(self, schema: TableSchema) -> CopyTarget | None:
        self.log.append(("prepare", schema.table))
        return Target() if schema is STREAMED else None

    def write(self, schema: TableSchema, events: Sequence[ChangeEvent], state: RangeState) -> None:
        self.log.append(("write", schema.table, len(events), state.done))

    def defer_keys(self, tables: Sequence[TableSchema], todo: Sequence[RangeState]) -> None:
        self.log.append(("defer_keys", [t.table for t in tables], len(todo)))

    def build_keys(self) -> None:
        self.log.append(("build_keys",))

    def close(self) -> None:
        self.log.append(("close",))


class Reader:
    def __init__(self, log: list[Any]) -> None:
        self.log = log
        self.planned = 0

    def prepare(self, writer: BulkWriter) -> list[CopyTable]:
        return [CopyTable(s, writer.prepare(s) is not None) for s in (STREAMED, ROWS)]

    def plan(self) -> list[RangeState]:
        self.planned += 1
        return [
            RangeState("public.big", 0, None, 100, None, False),
            RangeState("public.big", 1, 100, None, None, False),
            RangeState("public.odd", 0, None, None, None, False),
        ]

    def estimate_rows(self, tables: Collection[str]) -> int:
        return 10 * len(tables)

    def read(self, todo: Sequence[RangeState]) -> Iterator[Chunk]:
        self.log.append(("read", [(s.table, s.index) for s in todo]))
        for state in todo:
            done = replace(state, last_key=(1,), done=True)
            if state.table == "public.big":
                yield Chunk(done, 5)
            else:
                yield Chunk(done, 1, ROWS, [_event()])


def _event() -> ChangeEvent:
    return ChangeEvent(Op.READ, "public", "odd", {"id": 1}, None, {"id": 1}, 0, PgPosition(0), "")


def test_a_first_copy_plans_defers_keys_copies_then_builds_them() -> None:
    log: list[Any] = []
    writer, reader = Writer(None, log), Reader(log)
    items = list(copy_snapshot(reader, writer))
    assert items[:2] == [STREAMED, ROWS]  # schemas before any row
    assert items[2:] == [IDLE] * 3  # the daemon's turn after each chunk
    assert reader.planned == 1 and writer.progress.stored is not None
    assert log == [
        ("prepare", "big"),
        ("prepare", "odd"),
        ("defer_keys", ["big"], 3),
        ("read", [("public.big", 0), ("public.big", 1), ("public.odd", 0)]),
        ("write", "odd", 1, True),  # only rows the reader did not stream itself
        ("build_keys",),
    ]


def test_a_resumed_copy_reads_only_what_the_target_lacks() -> None:
    log: list[Any] = []
    stored = [
        RangeState("public.big", 0, None, 100, (99,), True),
        RangeState("public.big", 1, 100, None, (150,), False),
        RangeState("public.gone", 0, None, None, None, False),  # no longer selected
        RangeState("public.odd", 0, None, None, None, False),
    ]
    reader = Reader(log)
    list(copy_snapshot(reader, Writer(stored, log)))
    assert reader.planned == 0
    assert ("read", [("public.big", 1), ("public.odd", 0)]) in log


def test_without_streamed_tables_no_key_is_deferred_or_built() -> None:
    class RowsOnly(Writer):
        def prepare(self, schema: TableSchema) -> CopyTarget | None:
            return None

    log: list[Any] = []
    list(copy_snapshot(Reader(log), RowsOnly(None, log)))
    assert not [entry for entry in log if entry[0] in ("defer_keys", "build_keys")]


def test_a_progress_row_reads_back_as_the_state_it_recorded() -> None:
    state = RangeState("public.big", 1, 100, None, ("a", 7), False)
    ((_, table, index, lower, upper),) = plan_rows("p", [state])
    last, done, rows, pipeline, *_ = record_params("p", replace(state, done=True), 5)
    assert (pipeline, rows) == ("p", 5)
    assert state_of((table, index, lower, upper, last, done)) == replace(state, done=True)
