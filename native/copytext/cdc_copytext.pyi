"""Insert events in cdc's wire form to PostgreSQL COPY data (native/copytext)."""

from typing import Any

BINARY_HEADER: bytes
BINARY_TRAILER: bytes

class RowEncoder:
    def __init__(self, columns: list[str], kinds: list[str], binary: bool = False) -> None: ...
    @property
    def binary(self) -> bool: ...
    def encode(self, values: list[bytes]) -> tuple[bytes, int] | None: ...

def group_by_topic(
    messages: list[Any], header: str
) -> tuple[list[tuple[str, bytes, list[bytes]]], dict[tuple[str, int], int]] | None: ...
