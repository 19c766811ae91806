"""Chunking, bisection and the live re-check of `cdc verify`, on in-memory tables."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

from cdc.migrate.verify.canonical import row_hash
from cdc.migrate.verify.chunks import (
    Key,
    KeyRange,
    RowDiff,
    RowHashes,
    Summary,
    canonical_key,
    chunks,
    diff_range,
    settle,
)


class MemorySide:
    """A table as a dict key -> row; counts the queries it answers."""

    def __init__(self, rows: dict[int, Any]) -> None:
        self.rows = dict(rows)
        self.summaries = 0
        self.rows_read = 0

    def _keys(self, keys: KeyRange) -> list[int]:
        return sorted(
            k
            for k in self.rows
            if (keys.lo is None or (k,) > keys.lo) and (keys.hi is None or (k,) <= keys.hi)
        )

    def summary(self, keys: KeyRange) -> Summary:
        self.summaries += 1
        hashes = self.row_hashes(keys)
        return Summary(len(hashes), sum(h for _, h in hashes.values()))

    def key_at(self, keys: KeyRange, offset: int) -> Key | None:
        found = self._keys(keys)
        return (found[offset],) if offset < len(found) else None

    def row_hashes(self, keys: KeyRange) -> RowHashes:
        return self.row_hashes_for([(k,) for k in self._keys(keys)])

    def row_hashes_for(self, keys: Sequence[Key]) -> RowHashes:
        found = [k for (k,) in keys if k in self.rows]
        self.rows_read += len(found)
        return {canonical_key((k,)): ((k,), row_hash([k, self.rows[k]])) for k in found}


def tables(n: int) -> tuple[MemorySide, MemorySide]:
    rows = {k * 3: f"row {k}" for k in range(n)}
    return MemorySide(rows), MemorySide(rows)


def diff_all(source: MemorySide, target: MemorySide, chunk_rows: int) -> RowDiff:
    found = RowDiff()
    for chunk in chunks(source, chunk_rows):
        found.add(diff_range(source, target, chunk, row_level_rows=16))
    return found


def test_chunks_cover_every_key_once_and_the_last_is_open() -> None:
    source, _ = tables(1000)
    ranges = list(chunks(source, 300))
    assert len(ranges) == 4
    assert ranges[0].lo is None and ranges[-1].hi is None
    assert [len(source._keys(r)) for r in ranges] == [300, 300, 300, 100]
    assert all(a.hi == b.lo for a, b in itertools.pairwise(ranges))


def test_equal_tables_cost_one_summary_per_chunk() -> None:
    source, target = tables(1000)
    assert not diff_all(source, target, 300)
    assert target.summaries == 4


def test_a_changed_row_is_found_by_bisection_without_reading_the_table_row_by_row() -> None:
    source, target = tables(10_000)
    target.rows[3 * 4321] = "changed"
    source.rows_read = 0
    found = diff_range(source, target, KeyRange(), row_level_rows=16)
    assert found.differing == [(3 * 4321,)]
    assert not found.missing and not found.extra
    # about log2(10000/16) levels of two summaries each, not 10000 row reads
    assert source.summaries < 40


def test_missing_and_extra_rows_are_named() -> None:
    source, target = tables(2000)
    del target.rows[300]
    target.rows[301] = "only on the target"
    target.rows[10**6] = "past every boundary"
    found = diff_all(source, target, 500)
    assert found.missing == [(300,)]
    assert sorted(found.extra) == [(301,), (10**6,)]
    assert not found.differing


def test_the_target_side_is_split_when_it_has_the_rows() -> None:
    source = MemorySide({})
    target = MemorySide({k: "x" for k in range(100)})
    found = diff_range(source, target, KeyRange(), row_level_rows=8)
    assert sorted(found.extra) == [(k,) for k in range(100)]


def test_rows_in_flight_are_not_reported_once_the_sink_caught_up() -> None:
    source, target = tables(1000)
    for k in (30, 60, 90):  # the source changed; the sink has not applied it yet
        source.rows[k] = "new"
    source.rows[5000] = "inserted"
    del source.rows[120]
    found = diff_all(source, target, 200)
    assert len(found.keys()) == 5

    def sink_applies() -> bool:
        target.rows = dict(source.rows)
        return True

    remaining, busy, caught_up = settle(source, target, found, sink_applies, max_rounds=3)
    assert caught_up and not remaining and not busy


def test_a_real_difference_survives_the_rechecks() -> None:
    source, target = tables(1000)
    target.rows[33] = "edited by hand"
    found = diff_all(source, target, 200)
    remaining, busy, caught_up = settle(source, target, found, lambda: True, max_rounds=3)
    assert caught_up and remaining.differing == [(33,)] and not busy


def test_a_hot_key_is_rechecked_until_the_sink_catches_up_with_it() -> None:
    source, target = tables(100)
    source.rows[9] = "v1"
    found = diff_all(source, target, 50)
    versions = iter(["v2", "v3"])

    def lagging_sink() -> bool:
        # the sink applies what the source had; the source changes the row again right after
        target.rows[9] = source.rows[9]
        source.rows[9] = next(versions, source.rows[9])
        return True

    remaining, busy, _ = settle(source, target, found, lagging_sink, max_rounds=5)
    assert not remaining and not busy


def test_an_unconfirmed_recheck_says_so() -> None:
    source, target = tables(100)
    target.rows[12] = "edited"
    found = diff_all(source, target, 50)
    remaining, _, caught_up = settle(source, target, found, lambda: False, max_rounds=3)
    assert not caught_up and remaining.differing == [(12,)]


def test_a_key_the_application_rewrites_every_round_is_busy_not_different() -> None:
    source, target = tables(100)
    versions = iter(f"v{n}" for n in range(100))
    source.rows[7] = next(versions)
    found = diff_all(source, target, 50)

    def sink_past_the_read() -> bool:
        # the application writes the row again after the source was read, and the sink
        # has applied that newer version too when the target is read
        source.rows[7] = next(versions)
        target.rows[7] = source.rows[7]
        return True

    remaining, busy, caught_up = settle(source, target, found, sink_past_the_read, 3)
    assert caught_up and not remaining and busy.keys() == [(7,)]
