"""The direct copy's seams (`snapshot.mode: direct`): what a source's snapshot
reader and a target's bulk writer offer the copy (`cdc.direct_copy`).

Resume contract: the target keeps the plan (each source table's key ranges)
and how far each range got (`RangeState`), in its own tables. A chunk's rows
and its range's new state are written in one target transaction, by `write`
or by a COPY session's `copy`, so a range is recorded as far as the rows the
target holds, never further: a restarted copy resumes each range after its
`last_key` and skips the ranges `done`; no chunk is written twice or lost.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from cdc.events import ChangeEvent
from cdc.schemas import TableSchema
from cdc.source import StreamItem

# PostgreSQL's COPY formats: a target that takes COPY streams reads these
CopyFormat = Literal["binary", "text", "csv"]
CopyData = bytes | bytearray | memoryview | str


@dataclass(frozen=True, slots=True)
class RangeState:
    """One planned key range of a source table and how far the target has it."""

    table: str  # source schema.table
    index: int
    lower: int | None  # inclusive, on a single integer key; None: unbounded
    upper: int | None  # exclusive
    last_key: tuple[Any, ...] | None  # key of the last row copied; None: nothing yet
    done: bool


class CopyProgress(Protocol):
    """The plan and its progress, kept on the target."""

    def load(self) -> list[RangeState] | None:
        """The stored plan with its progress; None before the first plan."""

    def plan(self, ranges: list[RangeState]) -> None:
        """Store the plan (in its own transaction)."""

    def record(self, state: RangeState, rows: int) -> None:
        """A chunk is written: call inside the transaction that wrote its rows."""


class CopySession(Protocol):
    """A target session of one worker thread, streaming one table's chunks."""

    def copy(self, data: Iterable[CopyData], state: RangeState) -> int:
        """One chunk's COPY data into the table and `state` recorded, in one
        target transaction; the number of rows the target took."""


class CopyTarget(Protocol):
    """A target table that takes a source table's chunks as COPY streams."""

    @property
    def types(self) -> Mapping[str, str]:
        """Column -> the target column's type, as the target names it."""

    @property
    def native(self) -> frozenset[str]:
        """The columns whose target type is the one the target creates for the
        source column (`target.create_tables`): a value formatted as the sink
        converts it fits them."""

    def session(self, format: CopyFormat) -> AbstractContextManager[CopySession]:
        """A session of its own (a worker thread's) for COPY data in `format`."""


class BulkWriter(Protocol):
    """What a target offers the direct copy."""

    @property
    def progress(self) -> CopyProgress: ...

    def prepare(self, schema: TableSchema) -> CopyTarget | None:
        """The target table of the source table `schema`, created first when
        allowed; None when it takes rows only (`write`)."""

    def write(self, schema: TableSchema, events: Sequence[ChangeEvent], state: RangeState) -> None:
        """A chunk's rows (`op: r` events of `schema`) and its progress
        (`state`) in one target transaction, through the sink's own path."""

    def defer_keys(self, tables: Sequence[TableSchema], todo: Sequence[RangeState]) -> None:
        """Before the first chunk: `tables` (loaded as COPY streams) may load
        without their keys and indexes, where the copy has not started them."""

    def build_keys(self) -> None:
        """Builds the keys and indexes still deferred (this run's or a killed
        one's): the sink's upserts need them."""

    def close(self) -> None: ...


@dataclass(frozen=True, slots=True)
class CopyTable:
    """A source table as the reader copies it."""

    schema: TableSchema
    streamed: bool  # its chunks go in as COPY streams, from the reader's workers

    @property
    def name(self) -> str:
        """The source table's name in the plan (`RangeState.table`)."""
        return f"{self.schema.schema}.{self.schema.table}"


@dataclass(frozen=True, slots=True)
class Chunk:
    """A chunk read: its range's state after it and how many rows it holds.
    A streamed chunk is already on the target; otherwise `events` are its
    rows, for the writer to write."""

    state: RangeState
    rows: int
    schema: TableSchema | None = None  # with `events`: the rows' table
    events: Sequence[ChangeEvent] = ()


class SnapshotReader(Protocol):
    """A source's tables, read in the snapshot its stream starts from."""

    def prepare(self, writer: BulkWriter) -> list[CopyTable]:
        """Every table, prepared on the target (`writer.prepare`), with the path
        its rows take."""

    def plan(self) -> list[RangeState]:
        """The key ranges of every table, nothing copied yet (after `prepare`)."""

    def estimate_rows(self, tables: Collection[str]) -> int:
        """About how many rows `tables` hold."""

    def read(self, todo: Sequence[RangeState]) -> Iterator[Chunk]:
        """The chunks of the ranges `todo`, each range after its `last_key`;
        a streamed table's through sessions of its `CopyTarget`."""


# What a source runs in place of its snapshot: the copy of the reader's
# tables into the pipeline's target (wired by the daemon).
DirectCopy = Callable[[SnapshotReader], Iterator[StreamItem]]
