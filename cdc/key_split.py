"""Cutting a single integer key's span into ranges read in parallel (the
snapshots and the direct copy of both sources)."""

from __future__ import annotations


def split_keys(low: int, high: int, parts: int) -> list[int]:
    """The inner edges that cut the keys low..high into `parts` ranges of
    equal span (a range of a sparse key may hold fewer rows)."""
    step = max(1, (high - low + parts) // parts)
    return [low + step * i for i in range(1, parts) if low + step * i <= high]
