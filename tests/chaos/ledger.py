"""What the source committed, as the writers saw it: the rows every table must
end with on the target.

A transaction enters the ledger when its COMMIT returned, or, when the reply
was lost to a fault, once its marker row (in `chaos_marks`, a table cdc does
not capture) is found after the server is back. The long transaction's rows
are kept as id ranges: a million dictionaries would cost more than the check.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

Key = tuple[Any, ...]
Row = dict[str, Any]


@dataclass
class Settled:
    committed: int = 0
    unknown_committed: int = 0  # the reply was lost, the marker was found
    unknown_rolled_back: int = 0


@dataclass
class Ledger:
    tables: dict[str, dict[Key, Row]] = field(
        default_factory=lambda: {"items": {}, "lines": {}, "probes": {}}
    )
    bulk_ranges: list[tuple[int, int]] = field(default_factory=list)  # (first id, last id)
    added_columns: list[str] = field(default_factory=list)  # by the schema-change fault
    settled: Settled = field(default_factory=Settled)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def apply(self, ops: list[Op]) -> None:
        with self.lock:
            for op in ops:
                op.apply(self.tables[op.table])

    def keys(self, table: str) -> list[Key]:
        with self.lock:
            return list(self.tables[table])

    def add_column(self, name: str, default: str) -> None:
        """`items` took a column: the rows there take its default."""
        with self.lock:
            self.added_columns.append(name)
            for row in self.tables["items"].values():
                row.setdefault(name, default)

    def bulk_rows(self) -> int:
        return sum(last - first + 1 for first, last in self.bulk_ranges)


@dataclass(frozen=True)
class Op:
    """One statement of a transaction and its effect on the ledger."""

    kind: str  # insert | update | delete | rekey
    table: str
    key: Key
    row: Row = field(default_factory=dict)  # insert: the row; update: the changed columns
    new_key: Key = ()  # rekey: the key the row moves to

    def apply(self, rows: dict[Key, Row]) -> None:
        if self.kind == "insert":
            rows[self.key] = dict(self.row)
        elif self.kind == "update":
            rows[self.key].update(self.row)
        elif self.kind == "delete":
            del rows[self.key]
        else:
            moved = rows.pop(self.key)
            moved.update(self.row)
            rows[self.new_key] = moved
