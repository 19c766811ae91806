"""The offset store seam: where a component records how far it durably got."""

from __future__ import annotations

from typing import Any, Protocol


class OffsetStore(Protocol):
    """A small durable key -> JSON map.

    `put` returns only once the value is durable; a crash right after it
    keeps the value, a crash before it keeps the previous one.
    """

    def get(self, key: str) -> Any | None: ...

    def put(self, key: str, value: Any) -> None: ...

    def delete(self, key: str) -> None: ...

    def keys(self, prefix: str = "") -> list[str]: ...
