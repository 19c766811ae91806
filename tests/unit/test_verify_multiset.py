"""`cdc verify` of a table without a primary key: both sides as multisets of rows, compared
whole, again once the sink caught up, counted missing and extra when they stay apart."""

from __future__ import annotations

from collections import Counter

from cdc.migrate.verify.canonical import row_hash
from cdc.migrate.verify.chunks import KeyRange, Summary
from cdc.migrate.verify.multiset import MultisetResult, compare


class Rows:
    """A table as a list of rows, identical ones allowed."""

    def __init__(self, *rows: tuple[object, ...]) -> None:
        self.rows = list(rows)

    def hash_counts(self) -> Counter[int]:
        return Counter(row_hash(list(row)) for row in self.rows)

    def summary(self, keys: KeyRange) -> Summary:
        counts = self.hash_counts()
        return Summary(counts.total(), sum(h * n for h, n in counts.items()))


def never() -> bool:
    raise AssertionError("equal sides need no wait for the sink")


def test_equal_multisets_in_any_order_are_equal() -> None:
    source = Rows((1, "x"), (1, "x"), (None, None))
    target = Rows((None, None), (1, "x"), (1, "x"))
    assert compare(source, target, never, 5) == MultisetResult(3)


def test_a_missing_duplicate_and_an_extra_row_are_counted() -> None:
    source = Rows((1, "x"), (1, "x"), (2, "y"))
    target = Rows((1, "x"), (2, "y"), (3, "z"))
    waits: list[int] = []

    def caught_up() -> bool:
        waits.append(1)
        return True

    found = compare(source, target, caught_up, 5)
    assert found == MultisetResult(3, missing=1, extra=1)
    assert len(waits) == 1  # seen twice the same after the sink caught up: settled


def test_a_difference_in_flight_is_not_reported() -> None:
    source, target = Rows((1, "x"), (1, "x")), Rows((1, "x"))

    def caught_up() -> bool:
        target.rows = list(source.rows)  # the sink applied the second row meanwhile
        return True

    assert compare(source, target, caught_up, 5) == MultisetResult(2)


def test_a_sink_that_does_not_catch_up_leaves_it_unconfirmed() -> None:
    found = compare(Rows((1, "x")), Rows(), lambda: False, 5)
    assert found == MultisetResult(1, missing=1, unconfirmed=True)
