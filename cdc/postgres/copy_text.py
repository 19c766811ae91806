"""Rows of `COPY ... TO STDOUT` in text format, split into raw field bytes.

The fields keep PostgreSQL's text output form, the same form pgoutput sends,
so snapshot rows and streamed rows go through the same converters.
"""

from __future__ import annotations

import re

_ESCAPE = re.compile(rb"\\(?:([0-7]{1,3})|x([0-9a-fA-F]{1,2})|(.))", re.DOTALL)
_SIMPLE = {b"b": b"\b", b"f": b"\f", b"n": b"\n", b"r": b"\r", b"t": b"\t", b"v": b"\v"}


def _unescape_one(match: re.Match[bytes]) -> bytes:
    octal, hexa, char = match.groups()
    if octal is not None:
        return bytes([int(octal, 8) & 0xFF])
    if hexa is not None:
        return bytes([int(hexa, 16)])
    return _SIMPLE.get(char, char)


def split_row(line: bytes) -> list[bytes | None]:
    """One COPY text line (with or without its newline) to fields; NULL is None."""
    fields: list[bytes | None] = list(line.rstrip(b"\n").split(b"\t"))
    if b"\\" in line:
        for index, field in enumerate(fields):
            if field is not None and b"\\" in field:
                fields[index] = None if field == b"\\N" else _ESCAPE.sub(_unescape_one, field)
    return fields
