"""The change model a sink works in: one change as decoded from Kafka, and a
table's batch of them collapsed to one net state per key (`sinks.collapse`).
Transforms rewrite `Change`s; appliers take `TableBatch`es."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from cdc.events import Op
from cdc.schemas import TableSchema

KeyValues = tuple[Any, ...]


@dataclass(slots=True)
class Change:
    """One change as the sink sees it: values in wire form (see cdc.values)."""

    op: Op
    schema: TableSchema  # the source schema the row was written with
    target: tuple[str, str]  # target schema (or database) and table
    key: dict[str, Any] | None
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    unchanged: tuple[str, ...]
    ts_ms: int  # source commit time
    topic: str
    partition: int
    offset: int
    renamed_to: tuple[str, str] | None = None  # a RENAME: the source table's new name

    @property
    def key_values(self) -> KeyValues:
        assert self.key is not None
        return tuple(self.key.values())


@dataclass(slots=True)
class KeyState:
    """The net effect of a batch's changes on one key."""

    schema: TableSchema
    first_op: Op  # what the first change expected: CREATE/READ (absent) or UPDATE/DELETE
    row: dict[str, Any] | None  # None: delete
    complete: bool  # False: `row` lacks unchanged columns, update only those present
    ts_ms: int
    offset: tuple[int, int]  # (partition, offset) of the last change
    first: Change  # the first change of the key in the batch (conflicts name it)
    # an update without all its columns that a restarted source published again
    # after its row's delete was applied (`sinks.replays`): not a missing row
    replayed: bool = False


@dataclass(slots=True)
class TableBatch:
    target: tuple[str, str]
    keys: dict[KeyValues, KeyState] = field(default_factory=dict)
    truncate: bool = False  # truncate the table before applying `keys`
    partial: bool = False  # a change of it left columns out (`Change.unchanged`)


@dataclass(frozen=True, slots=True)
class TableEvent:
    """One source event, the same for all its copies."""

    op: Op  # TRUNCATE, DROP or RENAME
    source: str  # the source table, schema.table
    target: tuple[str, str]  # the target table (before a rename)
    event_id: str
    renamed_to: tuple[str, str] | None = None  # RENAME: the target table's new name

    @property
    def name(self) -> str:
        return f"{self.target[0]}.{self.target[1]}"
