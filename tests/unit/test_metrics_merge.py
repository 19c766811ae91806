"""Sink worker metrics served by the daemon: one series per label set, added up."""

from __future__ import annotations

import pickle
import subprocess
import sys

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

from cdc.metrics_merge import Families, MergedCollector, merge, snapshot


def _worker(rows: int, lag: float, seconds: float) -> Families:
    """What one worker process sends: its own metrics, through a pipe (pickled)."""
    registry = CollectorRegistry()
    applied = Counter("cdc_rows", "rows", ["table"], registry=registry)
    lag_gauge = Gauge("cdc_lag_seconds", "lag", registry=registry)
    batch = Histogram("cdc_batch_seconds", "batch", buckets=(1, 5), registry=registry)
    applied.labels(table="public.t").inc(rows)
    lag_gauge.set(lag)
    batch.observe(seconds)
    families: Families = pickle.loads(pickle.dumps(snapshot([applied, lag_gauge, batch])))
    return families


def _samples(families: Families) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value for f in families for s in f.samples}


def test_counters_and_histograms_add_up_gauges_show_the_largest() -> None:
    merged = _samples(merge([_worker(10, 2.0, 0.5), _worker(5, 7.0, 3.0)]))
    assert merged[("cdc_rows_total", (("table", "public.t"),))] == 15
    assert merged[("cdc_lag_seconds", ())] == 7.0
    assert merged[("cdc_batch_seconds_count", ())] == 2
    assert merged[("cdc_batch_seconds_sum", ())] == 3.5
    assert merged[("cdc_batch_seconds_bucket", (("le", "1.0"),))] == 1
    assert merged[("cdc_batch_seconds_bucket", (("le", "5.0"),))] == 2


def test_the_merged_families_render_once_each() -> None:
    workers = [_worker(1, 1.0, 0.1), _worker(2, 1.0, 0.1)]
    registry = CollectorRegistry()
    registry.register(MergedCollector(lambda: workers))
    text = generate_latest(registry).decode()
    assert text.count("# TYPE cdc_rows_total counter") == 1
    assert 'cdc_rows_total{table="public.t"} 3.0' in text


def test_a_process_that_ran_no_verify_exports_no_verify_result() -> None:
    # a 0 would read as "different" on the dashboard, and as "never" for the time;
    # a process of its own: this one may have run a verify in another test
    script = (
        "import cdc.metrics\n"
        "from prometheus_client import REGISTRY, generate_latest\n"
        "print(generate_latest(REGISTRY).decode())\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    )
    assert "# TYPE cdc_verify_last_equal gauge" in done.stdout  # registered, with no value
    samples = [
        line
        for line in done.stdout.splitlines()
        if line.startswith(("cdc_verify_last_equal", "cdc_verify_last_finished"))
    ]
    assert samples == []
