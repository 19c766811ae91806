"""Timing child processes: wall time and peak resident memory.

Each command runs under GNU ``time``, which reports its child's ru_maxrss. We
cannot take that figure from our own wait4: a child forked from this Python
process keeps the parent's resident size as its high-water mark through exec,
so every tool would appear to use at least as much memory as the bench. Linux
folds a process's reaped descendants into its figure, so for a tool that forks
workers (pgcopydb, pgloader) it is the largest single process in its tree; for
a pipeline we report the largest stage the same way. The database servers'
memory is not in it.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import IO

CHUNK = 1 << 20
# GNU time, not the shell keyword: it reports the child's peak RSS.
GNU_TIME = "/usr/bin/time"


@dataclass(frozen=True)
class Measurement:
    """One runner on one workload. ``rows`` is what the runner was verified to move."""

    name: str
    rows: int
    seconds: float
    peak_rss_mb: float | None = None
    # (p50, p99, max) milliseconds from a change at the source to the target, where measured
    latency_ms: tuple[float, float, float] | None = None

    @property
    def rows_per_s(self) -> float:
        return self.rows / self.seconds if self.seconds > 0 else 0.0


@dataclass(frozen=True)
class Timed:
    seconds: float
    peak_rss_mb: float


class ChildError(RuntimeError):
    pass


class NeedleCounter:
    """Counts a byte string in a stream, including hits split across chunk edges."""

    def __init__(self, needle: bytes) -> None:
        self.needle = needle
        self.count = 0
        self._tail = b""

    def feed(self, chunk: bytes) -> None:
        data = self._tail + chunk
        self.count += data.count(self.needle)
        # A tail shorter than the needle cannot hold a whole hit, so nothing is counted twice.
        self._tail = data[-(len(self.needle) - 1) :] if len(self.needle) > 1 else b""


class Collector:
    def __init__(self) -> None:
        self.parts: list[bytes] = []

    def feed(self, chunk: bytes) -> None:
        self.parts.append(chunk)

    @property
    def data(self) -> bytes:
        return b"".join(self.parts)


def run_timed(
    commands: Sequence[Sequence[str]],
    *,
    env: dict[str, str] | None = None,
    sink: Callable[[bytes], None] | None = None,
    cwd: str | None = None,
) -> Timed:
    """Run ``commands`` as one pipeline (each stdout feeds the next stdin) and time it.

    The last stage's stdout goes to ``sink`` chunk by chunk (or to /dev/null).
    The clock runs from the first spawn to the last exit, so tool start-up is
    included, as a user would pay it.
    """
    procs: list[subprocess.Popen[bytes]] = []
    with ExitStack() as stack:
        stats = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="cdc-bench-rss-")))
        # stderr goes to files: a full stderr pipe nobody reads would stall the tool.
        errs = [stack.enter_context(tempfile.TemporaryFile()) for _ in commands]
        wrapped = [
            [GNU_TIME, "--format=%M", f"--output={stats / str(i)}", *argv]
            for i, argv in enumerate(commands)
        ]
        try:
            start = time.perf_counter()
            _spawn(wrapped, procs, errs, env=env, cwd=cwd, capture=sink is not None)
            if sink is not None:
                out = procs[-1].stdout
                assert out is not None
                while chunk := os.read(out.fileno(), CHUNK):
                    sink(chunk)
                out.close()
            for proc in procs:
                proc.wait()
            seconds = time.perf_counter() - start
        finally:
            for proc in procs:
                if proc.returncode is None:
                    proc.kill()
                    proc.wait()
        for argv, proc, err in zip(commands, procs, errs, strict=True):
            if proc.returncode != 0:
                err.seek(0)
                tail = err.read().decode(errors="replace")[-4000:]
                raise ChildError(f"{argv[0]} exited with {proc.returncode}:\n{tail}")
        peak_kb = max(_read_kb(stats / str(i)) for i in range(len(commands)))
    return Timed(seconds=seconds, peak_rss_mb=peak_kb / 1024)


def _read_kb(path: Path) -> int:
    # GNU time writes "Command exited with non-zero status N" first on failure; the figure is last.
    lines = path.read_text().split()
    return int(lines[-1]) if lines else 0


def _spawn(
    commands: Sequence[Sequence[str]],
    procs: list[subprocess.Popen[bytes]],
    errs: Sequence[IO[bytes]],
    *,
    env: dict[str, str] | None,
    cwd: str | None,
    capture: bool,
) -> None:
    prev_out: IO[bytes] | None = None
    for i, argv in enumerate(commands):
        last = i == len(commands) - 1
        proc = subprocess.Popen(
            list(argv),
            stdin=prev_out if prev_out is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE if capture or not last else subprocess.DEVNULL,
            stderr=errs[i],
            env=env,
            cwd=cwd,
        )
        procs.append(proc)
        if prev_out is not None:
            # The parent's copy of a pipe end would keep the reader from seeing EOF.
            prev_out.close()
        prev_out = proc.stdout if not last else None
