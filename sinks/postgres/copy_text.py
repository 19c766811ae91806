"""Rows in wire form to PostgreSQL's COPY text format.

The hot loop of the sink's bulk path, so rows are built a chunk at a time,
column by column, with the per-value work left to C where the types allow:
a text-like column holding only strings and numbers is `str()` of each value,
the lines are `"\\t".join` over the columns zipped. Only a chunk whose text
holds a character COPY treats specially (backslash, tab, newline, carriage
return) beyond its NULL markers and separators is rebuilt with every field
escaped. Wire strings rarely hold them.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from itertools import repeat
from typing import Any

from cdc.postgres.target_types import TextEncoder, text_encoder

NULL = "\\N"
COPY_CHUNK_ROWS = 2000  # rows per COPY write: the server parses one chunk while we build the next
# the encoder of text-like target columns: a wire string is already its text form
_PLAIN = text_encoder("text")
# what the plain encoder turns into text with str() (a str stays itself)
_STR_ABLE = frozenset({str, int, float, type(None)})
_get = dict.get


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
        self._spec = list(zip(columns, encoders, [e is _PLAIN for e in encoders], strict=True))
        self._tabs = len(columns) - 1

    def text(self, rows: Sequence[dict[str, Any]], suffix: str = "") -> str:
        """One line per row, each ending with `suffix` (extra fields, already
        escaped, each after a tab) and a newline; a column a row lacks is NULL."""
        count = len(rows)
        if not count:
            return ""
        raw: list[list[Any]] = []
        fields: list[Sequence[str]] = []
        nulls = 0
        for name, encode, plain in self._spec:
            values = list(map(_get, rows, repeat(name, count)))
            missing = values.count(None)
            nulls += missing
            raw.append(values)
            if plain and _STR_ABLE.issuperset(map(type, values)):
                fields.append(
                    list(map(str, values))
                    if not missing
                    else [NULL if v is None else str(v) for v in values]
                )
            else:
                fields.append([NULL if v is None else encode(v) for v in values])
        end = suffix + "\n"
        text = end.join(map("\t".join, zip(*fields, strict=True))) + end
        # Each NULL marker holds one backslash; any other backslash, or a tab
        # or newline beyond the separators, comes from a value and must be escaped.
        if (
            text.count("\\") != nulls + count * suffix.count("\\")
            or text.count("\t") != count * (self._tabs + suffix.count("\t"))
            or text.count("\n") != count
            or "\r" in text
        ):
            escaped = [
                [NULL if v is None else escape(encode(v)) for v in values]
                for values, encode in zip(raw, self._encoders, strict=True)
            ]
            text = end.join(map("\t".join, zip(*escaped, strict=True))) + end
        return text

    def chunks(self, rows: Sequence[dict[str, Any]], suffix: str = "") -> Iterator[str]:
        """`text` of `rows` in chunks, each a COPY write of its own, so the
        server works on one while the next is built."""
        for start in range(0, len(rows), COPY_CHUNK_ROWS):
            yield self.text(rows[start : start + COPY_CHUNK_ROWS], suffix)

    def key_line(self, key_index: list[int], key: tuple[Any, ...], suffix: str) -> str:
        """A line with only the key columns set (the others NULL)."""
        fields = [NULL] * len(self._columns)
        for i, value in zip(key_index, key, strict=True):
            fields[i] = escape(self._encoders[i](value))
        return "\t".join(fields) + suffix + "\n"
