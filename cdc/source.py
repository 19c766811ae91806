"""The source seam: what a database reader gives the pipeline."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from enum import Enum
from typing import Protocol

from cdc.events import ChangeEvent, EncodedChanges
from cdc.position import Position
from cdc.schemas import TableSchema


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """A position reached with no event of its own: a transaction commit, a
    heartbeat, the end of a snapshot. The publisher acknowledges it once every
    event before it was delivered."""

    position: Position


class Idle(Enum):
    """Nothing new arrived for a while: the caller gets its turn (serve
    delivery reports, acknowledge, check for shutdown) on a quiet stream."""

    IDLE = "idle"


IDLE = Idle.IDLE

# A table schema comes before the first event written with it.
StreamItem = ChangeEvent | EncodedChanges | TableSchema | Checkpoint | Idle


class Source(Protocol):
    """Reads changes from a database.

    Resume contract: `stream(start)` yields the changes *after* `start` (or,
    with None, from the source's own stored position or a new snapshot).
    `ack(position)` tells the source that everything at or before `position`
    is durably in Kafka; only then may it release it on the server (PG flush
    LSN, MySQL stored offset).
    """

    def stream(self, start: Position | None) -> Iterator[StreamItem]: ...

    def ack(self, position: Position) -> None: ...

    def close(self) -> None: ...
