"""The low watermark of delivered positions.

Kafka may confirm deliveries out of order (different partitions, retries).
A source may acknowledge a position only when every message published at or
before it was delivered, so items are numbered in publish order and the
watermark advances over the longest delivered prefix. Positions are the
checkpoints a source placed between its messages (`mark`); each one passed
is handed out once by `drain`, so a source sees every checkpoint, not just
the latest.
"""

from __future__ import annotations

from collections import deque
from typing import Generic, TypeVar

P = TypeVar("P")


class Watermark(Generic[P]):
    def __init__(self) -> None:
        self._next = 0
        # [ticket, position, delivered] in publish order; a list, not a tuple, so
        # `delivered` can flip in place from the dict lookup
        self._pending: deque[list[object]] = deque()
        self._by_ticket: dict[int, list[object]] = {}
        self._acknowledged: P | None = None
        self._passed: list[P] = []

    def track(self, position: P | None) -> int:
        """Register a message about to be published; returns its ticket.

        Messages carry no position of their own (None) but hold back every
        checkpoint published after them.
        """
        ticket = self._next
        self._next += 1
        entry: list[object] = [ticket, position, False]
        self._pending.append(entry)
        self._by_ticket[ticket] = entry
        return ticket

    def delivered(self, ticket: int) -> None:
        self._by_ticket.pop(ticket)[2] = True
        pending = self._pending
        while pending and pending[0][2]:
            position = pending.popleft()[1]
            if position is not None:
                self._acknowledged = position  # type: ignore[assignment]
                self._passed.append(position)  # type: ignore[arg-type]

    def mark(self, position: P) -> None:
        """A position with no message of its own (a commit, a heartbeat): it is
        acknowledged as soon as everything published before it is."""
        self.delivered(self.track(position))

    def drain(self) -> list[P]:
        """The checkpoints passed since the last call, in publish order."""
        passed, self._passed = self._passed, []
        return passed

    @property
    def acknowledged(self) -> P | None:
        """The highest position whose messages, and all before them, were delivered."""
        return self._acknowledged

    @property
    def in_flight(self) -> int:
        return len(self._by_ticket)
