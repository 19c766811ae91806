"""A source under test (cdc, Kafka Connect) timed until Kafka holds what it must write.

The process runs under GNU time (its peak RSS, `bench.measure`), from its spawn, so
its start-up counts as a user pays it, until `in_kafka()` reaches the expected count;
then it is stopped with SIGTERM, sent to the measured process itself (GNU time
forwards no signal).
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from bench.measure import GNU_TIME

POLL_S = 0.02
TIMEOUT_S = 900.0
LOG_TAIL = 4000


def time_until_in_kafka(
    argv: list[str],
    env: dict[str, str],
    work: Path,
    expected: int,
    in_kafka: Callable[[], int],
    what: str,
) -> tuple[int, float, float]:
    """Spawn `argv` (`what` names it in errors), output to `work`/log; (messages in
    Kafka, seconds from the spawn until `expected` were, peak RSS in MB)."""
    log_path, stats = work / "log", work / "time"
    with log_path.open("wb") as log_file:
        start = time.perf_counter()
        proc = subprocess.Popen(
            [GNU_TIME, "--format=%M", f"--output={stats}", *argv],
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            env=env,
        )
        try:
            count = 0
            while count < expected:
                if proc.poll() is not None:
                    raise RuntimeError(
                        f"{what} exited with {proc.returncode} after {count} messages:\n"
                        + log_path.read_text(errors="replace")[-LOG_TAIL:]
                    )
                if time.perf_counter() - start > TIMEOUT_S:
                    raise RuntimeError(
                        f"{what} moved {count} of {expected} messages in {TIMEOUT_S}s:\n"
                        + log_path.read_text(errors="replace")[-LOG_TAIL:]
                    )
                time.sleep(POLL_S)
                count = in_kafka()
            seconds = time.perf_counter() - start
        finally:
            stop_timed(proc)
    return count, seconds, int(stats.read_text().split()[-1]) / 1024


def stop_timed(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM the process GNU time runs (its only child), which drains and exits."""
    children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children")
    for pid in children.read_text().split() if children.exists() else []:
        os.kill(int(pid), signal.SIGTERM)
    try:
        proc.wait(120)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
