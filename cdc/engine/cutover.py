"""What the engines report to the cut-over: positions marked on a source and
read back, its lag, fences and counters."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, Self

TableName = tuple[str, str]  # (schema, table); a MySQL table's schema is its database
Partition = tuple[str, int]  # (topic, partition)


class Marker(Protocol):
    """A point in a source's history: marked there (`Engine.mark`), or how far the
    source has put everything into Kafka (`Engine.published`). Printed as the
    engine writes its positions (an LSN, a binlog file:position)."""

    def reaches(self, marker: Self) -> bool:
        """Whether every change up to `marker` is at or before this position."""
        ...


class Published(Protocol):
    """How far the source has put everything into Kafka, read again at each call
    (None: it never ran); what it keeps open is released by `close`."""

    def __call__(self) -> Marker | None: ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class SourceLag:
    streaming: bool  # PostgreSQL: the slot is in use; MySQL: a source holds the pipeline lock
    seconds: float | None  # PostgreSQL: the slot's flush lag
    bytes: int | None  # changes not yet in Kafka
    retained_bytes: int | None  # PG: WAL the slot holds; MySQL: binlogs from the stored file
    position: Marker | None = None  # what the source acknowledged; None: no position yet


@dataclass(frozen=True)
class FenceResult:
    where: str  # the database (PostgreSQL) or server (MySQL) fenced
    sessions_ended: int


@dataclass(frozen=True)
class CounterSync:
    table: str  # the target table
    column: str
    value: int  # the next value the target hands out
