"""Positions of the MySQL/MariaDB source."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, order=True, slots=True)
class BinlogPosition:
    """Where to resume reading: the start of a transaction (`file`, `pos`),
    the GTID state before it, and how many of its row changes are already in
    Kafka (`skip`), so a restart inside a large multi-row event neither loses
    nor repeats rows. At a commit, (`file`, `pos`) is the next transaction's
    start and `skip` is 0.
    """

    file: str
    pos: int
    gtid: str = ""  # MariaDB domain-server-seq list, or a MySQL GTID set
    skip: int = 0

    def to_json(self) -> dict[str, Any]:
        return {"file": self.file, "pos": self.pos, "gtid": self.gtid, "skip": self.skip}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> BinlogPosition:
        return cls(data["file"], int(data["pos"]), data.get("gtid", ""), int(data.get("skip", 0)))


@dataclass(frozen=True, order=True, slots=True)
class SnapshotMark:
    """A snapshot chunk of one table is in Kafka: `after` is the last key read
    (JSON values, see `snapshot.stored_key`), None once the table is done."""

    table: str
    after: tuple[Any, ...] | None
    done: bool

    def to_json(self) -> dict[str, Any]:
        return {"table": self.table, "after": self.after, "done": self.done}


@dataclass(frozen=True, order=True, slots=True)
class SnapshotComplete:
    start: BinlogPosition

    def to_json(self) -> dict[str, Any]:
        return {"snapshot_complete": self.start.to_json()}


def parse_gtids(text: str) -> dict[str, str]:
    """MariaDB's "0-1-100,1-2-5": the last GTID per replication domain."""
    return {g.split("-", 1)[0]: g for g in text.split(",") if g.count("-") == 2}


def format_gtids(gtids: dict[str, str]) -> str:
    return ",".join(gtids[domain] for domain in sorted(gtids))
