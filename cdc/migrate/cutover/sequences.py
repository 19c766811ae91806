"""Sequences and AUTO_INCREMENT counters of the target, moved above the source's.

Replication copies rows, not counters: after the cut-over the target's
sequences would hand out ids the source already used. Each counter of a
replicated table is set to the larger of the source's next value and the
target's max(column) + 1. Target tables are named as the sink names them
(`Engine.target_table`), through `rename_table` and `route`.
"""

from __future__ import annotations

from cdc.engine import Sides
from cdc.engine.cutover import CounterSync
from cdc.migrate.verify.plan import target_table
from cdc.settings import Settings
from transforms.registry import build


def sync_counters(settings: Settings, sides: Sides) -> list[CounterSync]:
    """Move every counter of the target's replicated tables above the source's."""
    transforms = build(settings.transforms)
    targets = {target_table(sides, transforms, source): source for source in sides.source.tables()}
    return sides.target.raise_counters(
        targets, lambda source, column: sides.source.next_value(*source, column)
    )
