"""Snapshot progress for people: rows, rate and ETA in a log line every few seconds."""

from __future__ import annotations

import time

import structlog

log = structlog.get_logger(__name__)

REPORT_EVERY_S = 5.0


class Progress:
    """`total` is an estimate (the catalog's row counts); the ETA follows it."""

    def __init__(self, what: str, total: int) -> None:
        self._what = what
        self._total = max(total, 0)
        self._done = 0
        self._started = time.monotonic()
        self._reported = self._started

    def add(self, rows: int) -> None:
        self._done += rows
        now = time.monotonic()
        if now - self._reported >= REPORT_EVERY_S:
            self._reported = now
            self._log(now)

    def finish(self) -> None:
        self._log(time.monotonic(), finished=True)

    def _log(self, now: float, finished: bool = False) -> None:
        elapsed = max(now - self._started, 1e-9)
        rate = self._done / elapsed
        left = max(self._total - self._done, 0)
        fields: dict[str, object] = {"rows": self._done, "rows_per_s": round(rate)}
        if not finished and self._total:
            fields["percent"] = round(min(100.0, 100 * self._done / self._total), 1)
            fields["eta_s"] = round(left / rate) if rate else None
        log.info(f"{self._what}_{'done' if finished else 'progress'}", **fields)
