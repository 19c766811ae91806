"""The sink seam: what applies collapsed batches to one target database."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from cdc.changes import Change, KeyValues, TableBatch, TableEvent


@dataclass
class ApplyResult:
    rows: Counter[tuple[str, str]] = field(default_factory=Counter)  # (table, op)
    conflicts: Counter[tuple[str, str]] = field(default_factory=Counter)  # (table, kind)
    conflict_keys: list[tuple[str, str, KeyValues]] = field(default_factory=list)
    dead: list[tuple[Change, str]] = field(default_factory=list)
    last_ts_ms: int = 0  # source commit time of the newest change applied


class Applier(Protocol):
    """Applies batches to a target, one transaction per `apply`.

    Resume contract: `committed_offsets` returns, per (topic, partition), the
    next offset to read, as recorded by the last `apply` that committed; the
    rows and the offsets of one `apply` commit together or not at all.
    """

    def committed_offsets(self, topics: Sequence[str]) -> dict[tuple[str, int], int]: ...

    def apply(
        self,
        steps: Sequence[Sequence[TableBatch]],
        offsets: dict[tuple[str, int], int],
        before_commit: Callable[[ApplyResult], None] | None = None,
    ) -> ApplyResult: ...

    def table_event_reached(self, event: TableEvent, partition: int, partitions: int) -> bool:
        """A source TRUNCATE, DROP TABLE or RENAME TABLE, once every partition
        it was sent to has reached it (see `sinks.table_barriers`): whether it
        is done on the target."""
        ...

    def close(self) -> None: ...
