"""Reading the sink's stored offsets (`cdc.target_offsets`) through a DB-API
cursor of either shape: tuple rows (psycopg, PyMySQL's default) or mappings
(PyMySQL's DictCursor). The engines' real cursors are covered by the sink's
integration tests."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from cdc.target_offsets import read_offsets


class Cursor:
    def __init__(self, rows: list[Any]) -> None:
        self.rows = rows
        self.executed: list[tuple[str, list[Any]]] = []

    def execute(self, query: str, params: Sequence[Any], /) -> None:
        self.executed.append((query, list(params)))

    def fetchall(self) -> list[Any]:
        return self.rows


def test_tuple_rows_and_mapping_rows_read_alike() -> None:
    tuples = Cursor([("p.public.a", 0, 15), ("p.public.a", 1, 7)])
    mappings = Cursor(
        [
            {"topic": "p.public.a", "kafka_partition": 0, "next_offset": 15},
            {"topic": "p.public.a", "kafka_partition": 1, "next_offset": 7},
        ]
    )
    wanted = {("p.public.a", 0): 15, ("p.public.a", 1): 7}
    assert read_offsets(tuples, "public.cdc_offsets", "g") == wanted
    assert read_offsets(mappings, "`db`.`cdc_offsets`", "g") == wanted


def test_the_group_and_topics_are_parameters() -> None:
    cursor = Cursor([])
    read_offsets(cursor, "public.cdc_offsets", "pipe'line", ["p.public.a", "p.public.b"])
    ((query, params),) = cursor.executed
    assert query == (
        "SELECT topic, kafka_partition, next_offset FROM public.cdc_offsets"
        " WHERE consumer_group = %s AND topic IN (%s, %s)"
    )
    assert params == ["pipe'line", "p.public.a", "p.public.b"]


def test_every_topic_without_a_filter_and_none_with_an_empty_one() -> None:
    cursor = Cursor([("p.public.a", 0, 3)])
    assert read_offsets(cursor, "t", "g") == {("p.public.a", 0): 3}
    assert cursor.executed[0][0].endswith("WHERE consumer_group = %s")
    assert read_offsets(cursor, "t", "g", []) == {}
    assert len(cursor.executed) == 1  # nothing asked
