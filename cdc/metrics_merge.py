"""Metrics counted in other processes, served as one set by this one.

Sink worker processes (`sink.workers` > 1) send snapshots of their metric
families; the daemon serves their sum under the same names, so dashboards
and alerts read one series per label set whatever the worker count.
Counters and histograms add up; a gauge shows the largest value (the worst
lag); a `_created` sample the earliest time.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

Families = list[Metric]


def snapshot(collectors: Iterable[Collector]) -> Families:
    """The current families of `collectors`, ready to be pickled to another process."""
    return [family for collector in collectors for family in collector.collect()]


def merge(snapshots: Iterable[Families]) -> Families:
    """One family per name, its samples combined across `snapshots`."""
    merged: dict[str, Metric] = {}
    values: dict[str, dict[tuple[str, tuple[tuple[str, str], ...]], float]] = {}
    for families in snapshots:
        for family in families:
            if family.name not in merged:
                merged[family.name] = Metric(family.name, family.documentation, family.type)
                values[family.name] = {}
            combined = values[family.name]
            for sample in family.samples:
                key = (sample.name, tuple(sorted(sample.labels.items())))
                seen = combined.get(key)
                if seen is None:
                    combined[key] = sample.value
                elif sample.name.endswith("_created"):
                    combined[key] = min(seen, sample.value)
                elif family.type == "gauge":
                    combined[key] = max(seen, sample.value)
                else:
                    combined[key] = seen + sample.value
    for name, family in merged.items():
        for (sample_name, labels), value in values[name].items():
            family.add_sample(sample_name, dict(labels), value)
    return list(merged.values())


class MergedCollector(Collector):
    """Collects `merge(latest())` at every scrape."""

    def __init__(self, latest: Callable[[], Iterable[Families]]) -> None:
        self._latest = latest

    def collect(self) -> Iterator[Metric]:
        return iter(merge(self._latest()))
