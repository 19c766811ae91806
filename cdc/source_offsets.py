"""The sources' offset store seam: where a source records how far it durably
got (its stream position, its snapshot progress), kept on the
`<prefix>.__offsets` topic by `cdc.kafka.offsets.KafkaOffsetStore`.

Not the sink's offsets: how far the sink applied is the target's
`cdc_offsets` table, written with each batch's rows in the batch's
transaction (`sinks.postgres.offsets`, `sinks.mysql.offsets`) and read by
`cdc.target_offsets`.
"""

from __future__ import annotations

from typing import Any, Protocol


class OffsetStore(Protocol):
    """A small durable key -> JSON map, for a source's positions.

    `put` returns only once the value is durable; a crash right after it
    keeps the value, a crash before it keeps the previous one.
    """

    def get(self, key: str) -> Any | None: ...

    def put(self, key: str, value: Any) -> None: ...

    def delete(self, key: str) -> None: ...

    def keys(self, prefix: str = "") -> list[str]: ...
