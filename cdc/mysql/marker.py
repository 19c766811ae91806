"""Positions of a MySQL/MariaDB source for the cut-over, verify and `cdc status`.

A point is the binlog position, compared with the position the source stored
in its offsets topic once Kafka had it all. On MariaDB the comparison is by
GTID (every replication domain's sequence number): a binlog rotation moves the
file and position with no transaction the source could acknowledge, the GTIDs
not. MySQL's own GTID sets ("uuid:1-5") parse to nothing: file and position
compare.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from cdc.engine.cutover import SourceLag
from cdc.kafka.offsets import OffsetsReader
from cdc.mysql.position import BinlogPosition, parse_gtids
from cdc.mysql.setup import current_position
from cdc.mysql.source import POSITION_KEY
from cdc.settings_kafka import KafkaSettings


@dataclass(frozen=True)
class BinlogMarker:
    file: str
    pos: int
    gtid: str = ""  # MariaDB: `@@gtid_binlog_pos`

    @classmethod
    def of(cls, position: BinlogPosition) -> BinlogMarker:
        return cls(position.file, position.pos, position.gtid)

    def reaches(self, marker: BinlogMarker) -> bool:
        wanted = parse_gtids(marker.gtid)
        if wanted:
            have = parse_gtids(self.gtid)
            return all(
                domain in have and _sequence(have[domain]) >= _sequence(gtid)
                for domain, gtid in wanted.items()
            )
        return (binlog_index(self.file), self.pos) >= (binlog_index(marker.file), marker.pos)

    def __str__(self) -> str:
        return f"{self.file}:{self.pos}"


def _sequence(gtid: str) -> int:
    return int(gtid.rsplit("-", 1)[1])


def binlog_index(name: str) -> int:
    match = re.search(r"(\d+)$", name)
    return int(match.group(1)) if match else 0


def mark(cur: Any) -> BinlogMarker:
    return BinlogMarker.of(current_position(cur))


class StoredPosition:
    """The position the source stored in its offsets topic, followed with one
    consumer kept until `close`, so a wait can ask every few hundred milliseconds."""

    def __init__(self, kafka: KafkaSettings) -> None:
        self._offsets = OffsetsReader(kafka.client_config(), kafka.topic_prefix)

    def __call__(self) -> BinlogMarker | None:
        stored = self._offsets.read().get(POSITION_KEY)
        return None if stored is None else BinlogMarker.of(BinlogPosition.from_json(stored))

    def close(self) -> None:
        self._offsets.close()


def lag(cur: Any, stored: BinlogMarker, running: bool) -> SourceLag:
    """`stored`: what the source acknowledged; `running`: a source holds the
    pipeline's lock. Bytes behind: from the stored position to the server's,
    across the binlog files between them."""
    now = current_position(cur)
    cur.execute("SHOW BINARY LOGS")
    logs = [(row["Log_name"], int(row["File_size"])) for row in cur.fetchall()]
    index, current = binlog_index(stored.file), binlog_index(now.file)
    behind = (
        -stored.pos
        + sum(size for name, size in logs if index <= binlog_index(name) < current)
        + now.pos
    )
    retained = sum(size for name, size in logs if binlog_index(name) >= index)
    return SourceLag(running, None, max(0, behind), retained, stored)
