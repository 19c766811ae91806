"""COPY lines: the fast road gives exactly the line of escaping every field."""

from __future__ import annotations

from typing import Any

import pytest

from cdc.postgres.target_types import text_encoder
from sinks.postgres.copy_text import NULL, LineBuilder, escape

TYPES = {
    "id": "bigint",
    "name": "text",
    "amount": "numeric(12,2)",
    "meta": "jsonb",
    "photo": "bytea",
    "tags": "text[]",
    "ok": "boolean",
}


def slow_line(row: dict[str, Any], suffix: str = "") -> str:
    fields = [
        NULL if (v := row.get(c)) is None else escape(text_encoder(t)(v)) for c, t in TYPES.items()
    ]
    return "\t".join(fields) + suffix + "\n"


ROWS: list[dict[str, Any]] = [
    {"id": 1, "name": "plain", "amount": "1.50", "ok": True},
    {"id": 2, "name": "tab\there", "meta": {"a": "x\ny"}},
    {"id": 3, "name": "\\N"},  # a string that looks like the NULL marker
    {"id": 4, "name": "back\\slash\r\n", "tags": ["a", None, 'q"uote']},
    {"id": 5, "photo": "AAEC", "name": None},  # bytea text holds a backslash
    {"id": 6},  # columns the row lacks are NULL
    {"id": 7, "name": "", "amount": "NaN", "meta": [1, 2], "ok": False},
    {"id": 8, "name": 12, "amount": 1.5},  # numbers in text-like columns
    {"id": 9, "name": {"nested": "json"}, "amount": True},  # JSON and a bool in text columns
]


@pytest.mark.parametrize("row", ROWS)
def test_line_equals_escaping_every_field(row: dict[str, Any]) -> None:
    builder = LineBuilder(list(TYPES), [text_encoder(t) for t in TYPES.values()])
    assert builder.text([row]) == slow_line(row)
    assert builder.text([row], "\t1") == slow_line(row, "\t1")


def test_a_chunk_is_its_rows_lines_in_order() -> None:
    builder = LineBuilder(list(TYPES), [text_encoder(t) for t in TYPES.values()])
    clean = [r for r in ROWS if r["id"] in {1, 6, 7, 8, 9}]
    for rows in (clean, ROWS):
        assert builder.text(rows, "\t2") == "".join(slow_line(r, "\t2") for r in rows)
    assert builder.text([]) == ""


def test_key_line_sets_only_the_key() -> None:
    builder = LineBuilder(list(TYPES), [text_encoder(t) for t in TYPES.values()])
    assert builder.key_line([0], (42,), "\t0") == "42" + "\t\\N" * 6 + "\t0\n"
