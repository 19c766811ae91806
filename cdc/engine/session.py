"""A session on one side of a pipeline, the same for every engine."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, Self


class Session(Protocol):
    """An autocommit session: each statement reads what was committed when it
    started. Both drivers take `%s` parameters, so a literal `%` is written `%%`
    (parameters are always passed, even none)."""

    def rows(self, query: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Run `query`; its rows as tuples (none for a statement without a result)."""
        ...

    def close(self) -> None: ...

    def __enter__(self) -> Self: ...

    def __exit__(self, *exc: object) -> None: ...
