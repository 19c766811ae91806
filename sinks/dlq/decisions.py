"""What was decided about each dead letter, and where it is kept: the
target's `cdc_dead_letters` (`sinks.postgres.dlq_decisions`,
`sinks.mysql.dlq_decisions`). A dead letter without a decision is pending."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

PENDING = "pending"
REDRIVEN = "redriven"  # applied again through the sink's applier
SUPERSEDED = "superseded"  # a later change of its row was applied: not applied
SKIPPED = "skipped"  # marked handled by an operator, not applied
STATES = (PENDING, REDRIVEN, SUPERSEDED, SKIPPED)

Origin = tuple[str, int, int]  # (topic, partition, offset) of the original message


@dataclass(frozen=True)
class Decision:
    id: int  # the dead letter's offset on the dead-letter topic
    origin: Origin
    state: str  # REDRIVEN, SUPERSEDED or SKIPPED
    detail: str
    decided_at: datetime | None = None  # None until stored


class DecisionStore(Protocol):
    """The decisions of one pipeline (its consumer group)."""

    def load(self) -> dict[int, Decision]:
        """Every stored decision by dead-letter id; none when the table does
        not exist yet (reading creates nothing)."""
        ...

    def record(self, decisions: Sequence[Decision]) -> None:
        """Store them in one transaction, creating the table first if needed."""
        ...

    def close(self) -> None: ...
