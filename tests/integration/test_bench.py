"""The bench harness's own test: a small run that really drives every reference tool.

It never skips: a tool the bench cannot find or install fails the run, and so this test.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from bench.registry import WORKLOADS

ROOT = Path(__file__).resolve().parents[2]
ROWS = 5000

# workload -> runners that must report a positive rate (the references and peers; ours where
# the workload measures something else than a rate)
EXPECTED = {
    "pg_decoding": ["pg_recvlogical (test_decoding)"],
    "mysql_decoding": ["mariadb-binlog -v", "python-mysql-replication (stock)"],
    "pg_oltp": ["pg_recvlogical (test_decoding)"],
    "mysql_oltp": ["mariadb-binlog -v", "python-mysql-replication (stock)"],
    "sink_mixed": [
        "psql replay, a transaction per change",
        "mariadb client replay, a transaction per change",
    ],
    "latency_5k": [
        "paced writer alone, 5,000/s",
        "cdc PG -> PG, 1-row tx",
        "cdc MariaDB -> PG, 1-row tx",
    ],
    "bulk_copy": ["COPY pipe (psql | psql)", "pgcopydb clone", "pgloader"],
    "sink_apply": [
        "COPY pipe (psql | psql), keyed table",
        "COPY pipe (psql | psql), keyless table",
    ],
}


def _markdown_rows(report: str) -> dict[str, list[str]]:
    """Table rows of the per-workload sections, by runner name (first cell)."""
    rows: dict[str, list[str]] = {}
    for line in report.splitlines():
        if not line.startswith("| "):
            continue
        cells = [c.strip().replace("\\|", "|") for c in re.split(r"(?<!\\)\|", line)[1:-1]]
        # Per-workload rows have seven cells; the headline table has five.
        if len(cells) == 7:
            rows[cells[0]] = cells
    return rows


# The first run on a machine may apt-get install pgcopydb and pgloader.
@pytest.mark.timeout(900)
def test_bench_measures_every_reference(tmp_path: Path) -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.run",
            f"--rows={ROWS}",
            f"--out={tmp_path}",
            # Own database names, so a `make bench` running at the same time is not clobbered.
            "--prefix=bench_test",
            # Debezium's runners: tests/integration/test_debezium_bench.py, on a small change
            # log of each engine
            "--skip=Debezium",
            # the 10-row transactions run the 1-row ones' code with another writer
            "--skip=10-row",
            # latency_20k is latency_5k's code at another rate: one of them is enough here
            *(f"--only={w.name}" for w in WORKLOADS if w.name != "latency_20k"),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=880,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-6000:]

    report = (tmp_path / "report.md").read_text()
    table = _markdown_rows(report)
    results = json.loads((tmp_path / "results.json").read_text())
    workloads = {w["name"]: w for w in results["workloads"]}
    for workload, runners in EXPECTED.items():
        entries = {e["name"]: e for e in workloads[workload]["entries"]}
        for name in runners:
            entry = entries[name]
            assert entry["error"] is None, f"{name}: {entry['error']}"
            assert entry["rows"] == ROWS
            assert entry["rows_per_s"] > 0
            assert entry["ratio"] > 0
            assert name in table, f"no report row for {name}"
            assert float(table[name][4].replace(",", "")) > 0, table[name]
    for entry in workloads["latency_5k"]["entries"]:
        if entry["role"] == "ours":
            latency = entry["latency_ms"]
            assert 0 < latency["p50"] <= latency["p99"] <= latency["max"], entry
