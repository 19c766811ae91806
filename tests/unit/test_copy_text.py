"""COPY text rows, including every escape PostgreSQL writes."""

from __future__ import annotations

from cdc.postgres.copy_text import split_row


def test_plain_row() -> None:
    assert split_row(b"1\tabc\t2024-01-01\n") == [b"1", b"abc", b"2024-01-01"]


def test_null_and_escapes() -> None:
    line = b"\\N\ta\\tb\\nc\\\\d\t\\x41\\101\t\\\\N\n"
    assert split_row(line) == [None, b"a\tb\nc\\d", b"AA", b"\\N"]


def test_empty_string_is_not_null() -> None:
    assert split_row(b"\t\n") == [b"", b""]
