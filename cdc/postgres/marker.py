"""Positions of a PostgreSQL source for the cut-over, verify and `cdc status`.

A point is marked with a transactional logical message (`cdc_fence`, content
the pipeline's name): its commit is the last thing a fenced database writes,
and the source's slot moves past it only once Kafka has every change before it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import psycopg

from cdc.engine.cutover import SourceLag

FENCE_PREFIX = "cdc_fence"


@dataclass(frozen=True)
class LsnMarker:
    lsn: int

    def reaches(self, marker: LsnMarker) -> bool:
        return self.lsn > marker.lsn  # the slot stops at commit ends, after the marker

    def __str__(self) -> str:
        return f"{self.lsn >> 32:X}/{self.lsn & 0xFFFFFFFF:X}"


def mark(conn: psycopg.Connection[Any], pipeline: str) -> LsnMarker:
    row = conn.execute(
        "SELECT (pg_logical_emit_message(true, %s, %s) - '0/0')::bigint",
        (FENCE_PREFIX, pipeline),
    ).fetchone()
    assert row is not None
    return LsnMarker(int(row[0]))


def confirmed(conn: psycopg.Connection[Any], slot: str) -> LsnMarker | None:
    """How far the slot's reader confirmed it has everything (None: no such slot)."""
    row = conn.execute(
        "SELECT (confirmed_flush_lsn - '0/0')::bigint FROM pg_replication_slots"
        " WHERE slot_name = %s",
        (slot,),
    ).fetchone()
    return LsnMarker(int(row[0])) if row and row[0] is not None else None


def lag(conn: psycopg.Connection[Any], slot: str) -> SourceLag:
    row = conn.execute(
        "SELECT s.active, (s.confirmed_flush_lsn - '0/0')::bigint,"
        " (pg_current_wal_lsn() - s.confirmed_flush_lsn)::bigint,"
        " (pg_current_wal_lsn() - s.restart_lsn)::bigint,"
        " extract(epoch FROM r.flush_lag)::float8"
        " FROM pg_replication_slots s"
        " LEFT JOIN pg_stat_replication r ON r.pid = s.active_pid"
        " WHERE s.slot_name = %s",
        (slot,),
    ).fetchone()
    if row is None:
        return SourceLag(False, None, None, None)
    active, flushed, behind, retained, seconds = row
    position = None if flushed is None else LsnMarker(int(flushed))
    return SourceLag(bool(active), float(seconds or 0.0), behind, retained, position)
