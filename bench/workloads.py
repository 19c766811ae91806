"""Workloads, each with one reference runner and slots for others, and their results.

A workload prepares its data once (``prepare``), then every runner measures the
same data. The reference is the ceiling or the stock tool the others are
judged against; the report divides every other runner's rate by it. Our own
implementations join a workload as ``role="ours"`` runners beside the peers::

    from bench import pg_decoding
    pg_decoding.WORKLOAD.runners.append(Runner("cdc pgoutput reader", "ours", run_ours))
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Generic, Literal, TypeVar

from bench.measure import Measurement
from bench.servers import Servers

Role = Literal["reference", "peer", "ours"]
S = TypeVar("S")


@dataclass
class Context:
    """What every workload shares during one run."""

    rows: int
    servers: Servers
    prefix: str
    workdir: Path
    # Datasets already loaded in this run, so workloads that read the same source share one load.
    loaded: set[str] = field(default_factory=set)

    @property
    def src_db(self) -> str:
        return f"{self.prefix}_src"

    @property
    def dst_db(self) -> str:
        return f"{self.prefix}_dst"


@dataclass(frozen=True)
class Runner(Generic[S]):
    name: str
    role: Role
    run: Callable[[Context, S], Measurement]
    # What the figure includes, for the reader of the report.
    note: str = ""


@dataclass
class Workload(Generic[S]):
    name: str
    title: str
    prepare: Callable[[Context], S]
    reference: Runner[S]
    runners: list[Runner[S]] = field(default_factory=list)
    cleanup: Callable[[Context, S], None] | None = None
    # Commands the runners need on PATH; missing ones are installed before the run.
    tools: tuple[str, ...] = ()

    def all_runners(self) -> list[Runner[S]]:
        return [self.reference, *self.runners]


@dataclass(frozen=True)
class Entry:
    """One runner's outcome: a measurement, or the error that stopped it."""

    name: str
    role: Role
    note: str
    measurement: Measurement | None = None
    error: str | None = None


@dataclass
class Result:
    workload: str
    title: str
    entries: list[Entry]

    @property
    def reference(self) -> Measurement | None:
        return next((e.measurement for e in self.entries if e.role == "reference"), None)

    def ratio(self, m: Measurement | None) -> float | None:
        """``m``'s rate over the reference's rate on the same rows in the same run."""
        ref = self.reference
        if m is None or ref is None or ref.rows_per_s <= 0:
            return None
        return m.rows_per_s / ref.rows_per_s
