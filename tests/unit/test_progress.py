"""Snapshot progress lines: rows, rate, percent and ETA."""

from __future__ import annotations

import pytest
import structlog

from cdc import progress


def test_progress_reports_rate_percent_and_eta(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = iter([100.0, 110.0, 120.0])
    monkeypatch.setattr(progress.time, "monotonic", lambda: next(clock))
    with structlog.testing.capture_logs() as logs:
        meter = progress.Progress("snapshot", total=1000)  # started at t=100
        meter.add(250)  # t=110: 25 rows/s, 750 left
        meter.finish()  # t=120
    assert logs[0] == {
        "event": "snapshot_progress",
        "log_level": "info",
        "rows": 250,
        "rows_per_s": 25,
        "percent": 25.0,
        "eta_s": 30,
    }
    assert logs[1]["event"] == "snapshot_done"
    assert logs[1]["rows"] == 250
