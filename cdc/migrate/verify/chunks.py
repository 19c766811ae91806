"""Comparing one table on two sides by primary-key ranges, down to the rows.

The source's key space is cut into chunks of about `chunk_rows` keys (keyset
boundaries read on the source); each chunk is summarised on both sides by a
row count and an order-independent checksum (a sum of per-row hashes, so the
two engines need not agree on row order inside a chunk). A chunk whose
summaries differ is bisected at its median key until a range is small enough
to compare row by row. The sides are a `Side` protocol, so this logic knows
nothing of SQL.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Protocol

from cdc.migrate.verify.canonical import canonical

Key = tuple[Any, ...]
CanonicalKey = tuple[Any, ...]  # the key in canonical form: equal across engines
RowHashes = dict[CanonicalKey, tuple[Key, int]]  # canonical key -> (key as read, row hash)

ROW_LEVEL_ROWS = 512  # a range this small is compared row by row rather than split


def canonical_key(key: Key) -> CanonicalKey:
    return tuple(canonical(v) for v in key)


@dataclass(frozen=True)
class KeyRange:
    """Keys k with lo < k <= hi; None leaves that end open."""

    lo: Key | None = None
    hi: Key | None = None


class Summary(NamedTuple):
    rows: int
    checksum: int


class Side(Protocol):
    """One database's view of one table."""

    def summary(self, keys: KeyRange) -> Summary: ...

    def key_at(self, keys: KeyRange, offset: int) -> Key | None:
        """The key `offset` rows (0-based, in key order) into `keys`; None past the end."""
        ...

    def row_hashes(self, keys: KeyRange) -> RowHashes: ...

    def row_hashes_for(self, keys: Sequence[Key]) -> RowHashes:
        """The hashes of the rows with these keys (absent rows are absent)."""
        ...


@dataclass
class RowDiff:
    """Keys present on the source only (missing), on the target only (extra), on both with
    other values (differing)."""

    missing: list[Key] = field(default_factory=list)
    extra: list[Key] = field(default_factory=list)
    differing: list[Key] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.missing or self.extra or self.differing)

    def keys(self) -> list[Key]:
        return [*self.missing, *self.extra, *self.differing]

    def add(self, other: RowDiff) -> None:
        self.missing += other.missing
        self.extra += other.extra
        self.differing += other.differing


def chunks(source: Side, chunk_rows: int) -> Iterator[KeyRange]:
    """Consecutive ranges of about `chunk_rows` source keys; the last one is open-ended, so
    rows inserted past the last boundary while the check runs are still covered."""
    lo: Key | None = None
    while True:
        hi = source.key_at(KeyRange(lo, None), chunk_rows - 1)
        if hi is None:
            yield KeyRange(lo, None)
            return
        yield KeyRange(lo, hi)
        lo = hi


def compare_rows(source: RowHashes, target: RowHashes) -> RowDiff:
    diff = RowDiff()
    for key, (values, row_hash) in source.items():
        found = target.get(key)
        if found is None:
            diff.missing.append(values)
        elif found[1] != row_hash:
            diff.differing.append(values)
    diff.extra = [values for key, (values, _) in target.items() if key not in source]
    return diff


def diff_range(
    source: Side,
    target: Side,
    keys: KeyRange,
    row_level_rows: int = ROW_LEVEL_ROWS,
    on_summary: Callable[[KeyRange, Summary, Summary], None] | None = None,
    pool: Executor | None = None,
) -> RowDiff:
    """The differing rows of `keys`, by bisection: equal halves are dropped after one summary
    each, so the work grows with the number of differences, not with the table.
    `on_summary` sees every range compared, `keys` itself first. With a `pool`, the target
    is summarised there while the source is here: the two databases work at once."""
    diff = RowDiff()
    pending = [keys]
    while pending:
        current = pending.pop()
        if pool is None:
            ours, theirs = source.summary(current), target.summary(current)
        else:
            future = pool.submit(target.summary, current)
            ours, theirs = source.summary(current), future.result()
        if on_summary is not None:
            on_summary(current, ours, theirs)
        if ours == theirs:
            continue
        middle = None
        if max(ours.rows, theirs.rows) > row_level_rows:
            # split where the fuller side has half its rows: that half shrinks every time
            fuller, rows = (
                (source, ours.rows) if ours.rows >= theirs.rows else (target, theirs.rows)
            )
            middle = fuller.key_at(current, rows // 2 - 1)
        if middle is None:  # small enough, or the rows went away meanwhile
            diff.add(compare_rows(source.row_hashes(current), target.row_hashes(current)))
            continue
        pending += [KeyRange(current.lo, middle), KeyRange(middle, current.hi)]
    return diff


def settle(
    source: Side,
    target: Side,
    found: RowDiff,
    sink_caught_up: Callable[[], bool],
    max_rounds: int,
) -> tuple[RowDiff, RowDiff, bool]:
    """The keys of `found` that still differ once the sink has applied what the source had
    when they were read; the busy keys, whose rows changed between every two rounds; and
    whether the sink did catch up (False: the rest is unconfirmed).

    Each round reads the source rows first, then waits (`sink_caught_up` reads the source's
    position only then), then reads the target: the target then holds at least what the
    source had. A key still different is confirmed when both sides show the same rows as in
    the round before: a row the source keeps changing (a hot key) differs for a while
    without being different, so it gets another round, up to `max_rounds`. One still
    changing after that is busy, not different: the application rewrites it faster than
    the rounds go, and each of its changes reaches the target through the stream.
    """
    confirmed, pending = RowDiff(), found
    seen: dict[CanonicalKey, tuple[int | None, int | None]] = {}
    for _ in range(max_rounds):
        if not pending:
            return confirmed, RowDiff(), True
        keys = pending.keys()
        ours = source.row_hashes_for(keys)
        caught_up = sink_caught_up()
        theirs = target.row_hashes_for(keys)
        still = compare_rows(ours, theirs)
        if not caught_up:
            confirmed.add(still)
            return confirmed, RowDiff(), False
        pending = RowDiff()
        for kind in ("missing", "extra", "differing"):
            for key in getattr(still, kind):
                canon = canonical_key(key)
                state = (_hash(ours, canon), _hash(theirs, canon))
                stable = seen.get(canon) == state
                seen[canon] = state
                getattr(confirmed if stable else pending, kind).append(key)
    return confirmed, pending, True


def _hash(rows: RowHashes, key: CanonicalKey) -> int | None:
    found = rows.get(key)
    return None if found is None else found[1]
