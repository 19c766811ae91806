"""Positions of the PostgreSQL source."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cdc.postgres.copy_protocol import lsn_to_str


@dataclass(frozen=True, order=True, slots=True)
class PgPosition:
    """An LSN. `commit` marks the end of a transaction (or a heartbeat): only
    such a position may be confirmed to the slot as flushed, because the
    server resends whole transactions, never a part of one."""

    lsn: int
    commit: bool = False
    ts_ms: int = 0  # commit time, for the lag metric

    def to_json(self) -> dict[str, Any]:
        return {"lsn": lsn_to_str(self.lsn), "commit": self.commit}


@dataclass(frozen=True, order=True, slots=True)
class SnapshotMark:
    """A snapshot chunk of one key range is in Kafka: `after` is the last key
    read (None once the range is done)."""

    table: str
    index: int
    after: tuple[Any, ...] | None
    done: bool

    def to_json(self) -> dict[str, Any]:
        return {"table": self.table, "index": self.index, "done": self.done}


@dataclass(frozen=True, order=True, slots=True)
class SnapshotComplete:
    """Every snapshot row is in Kafka; streaming continues from `lsn`."""

    lsn: int

    def to_json(self) -> dict[str, Any]:
        return {"snapshot_complete": lsn_to_str(self.lsn)}


@dataclass(frozen=True, order=True, slots=True)
class TableCopied:
    """Every row of a table that joined the stream after the snapshot is in
    Kafka (`cdc.postgres.table_copy`): it counts as captured from now on."""

    table: str

    def to_json(self) -> dict[str, Any]:
        return {"table_copied": self.table}
