"""Insert events in cdc's wire form to PostgreSQL COPY text (native/copytext)."""

from typing import Any

class RowEncoder:
    def __init__(self, columns: list[str], kinds: list[str]) -> None: ...
    def copy_text(self, values: list[bytes]) -> tuple[bytes, int] | None: ...

def group_by_topic(
    messages: list[Any], header: str
) -> tuple[list[tuple[str, bytes, list[bytes]]], dict[tuple[str, int], int]] | None: ...
