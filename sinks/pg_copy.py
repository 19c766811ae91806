"""Rows in wire form to lines of PostgreSQL's COPY text format.

The hot loop of the sink's bulk path, so a row takes a fast road: values are
joined as they are, and only a line whose text holds a character COPY treats
specially (backslash, tab, newline, carriage return) beyond its NULL markers
and separators is rebuilt with every field escaped. Wire strings rarely hold
them, so most lines are built with two list comprehensions and one join.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sinks.pg_types import TextEncoder, text_encoder

NULL = "\\N"
# the encoder of text-like target columns: a wire string is already its text form
_PLAIN = text_encoder("text")


def escape(text: str) -> str:
    """COPY text format: backslash, tab, newline and carriage return are escaped."""
    if "\\" in text or "\t" in text or "\n" in text or "\r" in text:
        text = (
            text.replace("\\", "\\\\")
            .replace("\t", "\\t")
            .replace("\n", "\\n")
            .replace("\r", "\\r")
        )
    return text


class LineBuilder:
    """COPY lines for rows of one table's `columns` (each with its text encoder)."""

    def __init__(self, columns: list[str], encoders: list[TextEncoder]) -> None:
        self._columns = columns
        self._encoders = encoders
        self._plain = [encoder is _PLAIN for encoder in encoders]
        self._spec = list(zip(encoders, self._plain, strict=True))
        self._tabs = len(columns) - 1

    def line(self, row: Mapping[str, Any], suffix: str = "") -> str:
        """One line, `suffix` (extra fields, already escaped, each after a tab) and newline."""
        get = row.get
        values = [get(name) for name in self._columns]
        fields = [
            NULL if value is None else value if plain and type(value) is str else encode(value)
            for value, (encode, plain) in zip(values, self._spec, strict=True)
        ]
        line = "\t".join(fields)
        # Each NULL marker holds one backslash; any other backslash, or a tab
        # beyond the separators, comes from a value and must be escaped.
        if (
            line.count("\\") != values.count(None)
            or line.count("\t") != self._tabs
            or "\n" in line
            or "\r" in line
        ):
            line = "\t".join(
                NULL if value is None else escape(field)
                for value, field in zip(values, fields, strict=True)
            )
        return line + suffix + "\n"

    def key_line(self, key_index: list[int], key: tuple[Any, ...], suffix: str) -> str:
        """A line with only the key columns set (the others NULL)."""
        fields = [NULL] * len(self._columns)
        for i, value in zip(key_index, key, strict=True):
            fields[i] = escape(self._encoders[i](value))
        return "\t".join(fields) + suffix + "\n"
