"""The resume token of a source.

A `Position` is opaque to everything but the source that made it: the
publisher and the offset store only carry it, order it and persist it. Each
source defines its own (PostgreSQL: an LSN; MySQL: a GTID set or file:pos plus
the row index inside a rows event).
"""

from __future__ import annotations

from typing import Any, Protocol, Self


class Position(Protocol):
    """A totally ordered resume token. Resuming at a position continues *after* it."""

    def __lt__(self, other: Self, /) -> bool: ...

    def to_json(self) -> dict[str, Any]:
        """A JSON-able form that `from_json` of the same class reads back."""
        ...
