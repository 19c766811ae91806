"""`cdc verify` of a table without a primary key: the two tables as multisets.

No key pairs the rows, and identical rows may repeat, so each side is
summarised whole, as one range: its row count and the sum of its rows'
hashes (`verify.sides`), which needs neither an order nor a pairing, and
counts a row twice when it is there twice. While the summaries differ the
sink may only be behind: they are compared again each time it has caught
up, up to `rounds` times, until they are equal or the same difference is
seen twice in a row. A difference that stays is counted from the row hashes
of both sides: rows missing on the target, rows extra there (the multiset
differences); no key can name them, so none are listed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from cdc.migrate.verify.chunks import KeyRange, Summary


class WholeSide(Protocol):
    def summary(self, keys: KeyRange) -> Summary: ...

    def hash_counts(self) -> dict[int, int]:
        """Each row hash, with how many rows have it."""
        ...


@dataclass(frozen=True)
class MultisetResult:
    rows: int  # on the source
    missing: int = 0
    extra: int = 0
    unconfirmed: bool = False  # the sink did not catch up: the difference may be in flight

    @property
    def equal(self) -> bool:
        return not (self.missing or self.extra)


def compare(
    source: WholeSide, target: WholeSide, sink_caught_up: Callable[[], bool], rounds: int
) -> MultisetResult:
    whole = KeyRange()
    ours, theirs = source.summary(whole), target.summary(whole)
    if ours == theirs:
        return MultisetResult(ours.rows)
    seen: tuple[Summary, Summary] | None = None
    unconfirmed = False
    for _ in range(rounds):
        if seen == (ours, theirs):
            break  # the same after the sink caught up: not in flight
        seen = (ours, theirs)
        if not sink_caught_up():
            unconfirmed = True
            break
        ours, theirs = source.summary(whole), target.summary(whole)
        if ours == theirs:
            return MultisetResult(ours.rows)  # it was in flight
    mine, yours = source.hash_counts(), target.hash_counts()
    missing = sum(max(0, n - yours.get(h, 0)) for h, n in mine.items())
    extra = sum(max(0, n - mine.get(h, 0)) for h, n in yours.items())
    # equal by now (missing and extra 0): it changed between the summaries and this
    return MultisetResult(sum(mine.values()), missing, extra, unconfirmed=unconfirmed)
