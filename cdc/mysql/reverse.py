"""The reverse pipeline's start on a MySQL/MariaDB server (the new side of a
cut-over): the binlog position, stored in that pipeline's offsets topic as
its source would, before the new side takes writes."""

from __future__ import annotations

from typing import Any

from cdc.mysql.setup import current_position
from cdc.mysql.source import POSITION_KEY
from cdc.source_offsets import OffsetStore


def stored_start(store: OffsetStore) -> str | None:
    stored = store.get(POSITION_KEY)
    return None if stored is None else f"starts at {stored['file']}:{stored['pos']}"


def start(cur: Any, store: OffsetStore) -> str:
    position = current_position(cur)
    store.put(POSITION_KEY, position.to_json())
    return f"starts at {position.file}:{position.pos}"
