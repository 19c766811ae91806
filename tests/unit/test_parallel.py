"""The threaded producer helper of the snapshot readers."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from cdc.parallel import parallel


def test_every_item_arrives_and_each_job_keeps_its_order() -> None:
    def produce(job: int) -> Iterator[tuple[int, int]]:
        for n in range(50):
            yield job, n

    items = list(parallel(range(8), produce, workers=3))
    assert len(items) == 400
    for job in range(8):
        assert [n for j, n in items if j == job] == list(range(50))


def test_a_worker_error_is_raised_in_the_caller() -> None:
    def produce(job: int) -> Iterator[int]:
        yield job
        if job == 2:
            raise RuntimeError("table 2 is gone")

    with pytest.raises(RuntimeError, match="table 2 is gone"):
        list(parallel(range(4), produce, workers=2))


def test_leaving_early_stops_the_workers() -> None:
    def produce(job: int) -> Iterator[int]:
        yield from range(1_000_000)

    before = threading.active_count()
    for item in parallel(range(4), produce, workers=4):
        if item > 10:
            break
    assert threading.active_count() == before
