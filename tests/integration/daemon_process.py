"""The source daemon as a real child process, and what the crash tests observe of it.

Crash tests need `kill -9` and an honest RSS figure, which a thread inside
pytest cannot give, so they run `cdc run -c FILE` as its own process.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import psycopg
import yaml
from confluent_kafka import Consumer, TopicPartition

from cdc.postgres.copy_protocol import str_to_lsn
from tests.conftest import ROOT

PARTITIONS = 2


def write_pg_config(
    path: Path,
    name: str,
    pg_dsn: str,
    bootstrap: str,
    tables: list[str],
    *,
    source: dict[str, Any] | None = None,
    producer: dict[str, Any] | None = None,
    snapshot: dict[str, Any] | None = None,
    target: dict[str, Any] | None = None,
) -> Path:
    """A pipeline file for `cdc run` on the test's database and topic prefix."""
    config: dict[str, Any] = {
        "name": name,
        "source": {"type": "postgres", "dsn": pg_dsn, "tables": tables, **(source or {})},
        "kafka": {
            "bootstrap_servers": bootstrap,
            "partitions": PARTITIONS,
            "producer": producer or {},
        },
        "metrics": {"listen": "127.0.0.1:0"},
        "snapshot": {"chunk_rows": 1000, **(snapshot or {})},
    }
    if target is not None:
        config["target"] = target
    path.write_text(yaml.safe_dump(config))
    return path


def cdc_command() -> list[str]:
    local = ROOT / ".venv" / "bin" / "cdc"
    if local.exists():
        return [str(local)]
    found = shutil.which("cdc") or str(Path(sys.executable).parent / "cdc")
    return [found]


class DaemonProcess:
    """`cdc run -c config --role ROLE` with its JSON log lines in a file."""

    def __init__(self, config: Path, log_path: Path, role: str = "source") -> None:
        self.log_path = log_path
        self._log = log_path.open("ab")
        self.proc = subprocess.Popen(
            [*cdc_command(), "run", "-c", str(config), "--role", role],
            stdout=self._log,
            stderr=self._log,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def assert_alive(self) -> None:
        if not self.alive():
            raise AssertionError(f"cdc exited with {self.proc.returncode}:\n{self.log_tail()}")

    def status_kb(self, field: str) -> int:
        """A `VmRSS`/`VmHWM` figure of /proc/<pid>/status, in kB (0 once it is gone)."""
        try:
            text = Path(f"/proc/{self.pid}/status").read_text()
        except OSError:
            return 0
        for line in text.splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
        return 0

    def kill9(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(30)
        self._log.close()

    def stop(self, timeout: float = 60) -> int:
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(30)
        self._log.close()
        return self.proc.returncode

    def log_tail(self, chars: int = 4000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:]

    def log_events(self) -> list[dict[str, Any]]:
        events = []
        for line in self.log_path.read_bytes().splitlines():
            if line.startswith(b"{"):
                try:
                    events.append(orjson.loads(line))
                except orjson.JSONDecodeError:
                    continue  # the line the daemon is writing right now
        return events


def logged(daemon: DaemonProcess, event: str) -> bool:
    """Whether the daemon has logged `event` (a structlog event name) yet."""
    return any(e["event"] == event for e in daemon.log_events())


@dataclass(frozen=True)
class SlotState:
    confirmed_flush: int
    restart: int
    active: bool


def slot_state(conn: psycopg.Connection[Any], slot: str) -> SlotState:
    row = conn.execute(
        "SELECT confirmed_flush_lsn::text, restart_lsn::text, active"
        " FROM pg_replication_slots WHERE slot_name = %s",
        (slot,),
    ).fetchone()
    assert row is not None, f"slot {slot} does not exist"
    return SlotState(str_to_lsn(row[0]), str_to_lsn(row[1]), row[2])


def current_lsn(conn: psycopg.Connection[Any]) -> int:
    row = conn.execute("SELECT pg_current_wal_insert_lsn()::text").fetchone()
    assert row is not None
    return str_to_lsn(row[0])


def wait_until(
    condition: Callable[[], bool],
    timeout: float,
    what: str,
    daemon: DaemonProcess | None = None,
    every: float = 0.2,
) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if daemon is not None:
            daemon.assert_alive()
        if time.monotonic() > deadline:
            tail = f"\n{daemon.log_tail()}" if daemon is not None else ""
            raise AssertionError(f"timed out after {timeout}s waiting for {what}{tail}")
        time.sleep(every)


def wait_confirmed(
    dsn: str, slot: str, lsn: int, timeout: float, daemon: DaemonProcess | None = None
) -> None:
    """Until the slot's confirmed_flush_lsn reaches `lsn`: the source only
    confirms what Kafka acknowledged, so everything before `lsn` is in Kafka."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        wait_until(
            lambda: slot_state(conn, slot).confirmed_flush >= lsn,
            timeout,
            f"confirmed_flush_lsn >= {lsn:X}",
            daemon,
        )


@dataclass(frozen=True, slots=True)
class Record:
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None


def end_offsets(consumer: Consumer, topic: str, partitions: int) -> dict[int, int]:
    return {
        p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=30)[1]
        for p in range(partitions)
    }


def kafka_consumer(bootstrap: str) -> Consumer:
    return Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"test-crash-{time.time_ns()}",
            "enable.auto.commit": False,
            "enable.partition.eof": False,
        }
    )


class PartitionReader:
    """Reads every partition of a topic from its start, in offset order."""

    def __init__(self, bootstrap: str, topic: str, partitions: int) -> None:
        self.topic = topic
        self.partitions = partitions
        self.consumer = kafka_consumer(bootstrap)
        self.consumer.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
        self.position = dict.fromkeys(range(partitions), 0)

    def end_offsets(self) -> dict[int, int]:
        return end_offsets(self.consumer, self.topic, self.partitions)

    def iter_to(self, ends: dict[int, int], timeout: float = 120) -> Iterator[Record]:
        """The records up to `ends` (exclusive), in offset order within each
        partition. Records past `ends` are dropped, so read once per reader."""
        deadline = time.monotonic() + timeout
        while any(self.position[p] < ends[p] for p in ends):
            if time.monotonic() > deadline:
                raise AssertionError(f"read {self.position} of {ends} in {timeout}s")
            for msg in self.consumer.consume(10_000, 0.5):
                if msg.error() is not None:
                    continue
                partition, offset = msg.partition(), msg.offset()
                assert partition is not None and offset is not None
                if offset < self.position[partition] or offset >= ends[partition]:
                    continue
                self.position[partition] = offset + 1
                yield Record(partition, offset, msg.key(), msg.value())

    def read_all(self, timeout: float = 120) -> list[Record]:
        return list(self.iter_to(self.end_offsets(), timeout))

    def close(self) -> None:
        self.consumer.close()


def replay(records: Iterable[Record]) -> dict[Any, dict[str, Any]]:
    """The table a consumer rebuilds: per key, the last event wins; a delete
    removes it. Records must be in offset order per partition, which keeps
    each key's events in order (a key always maps to one partition)."""
    rows: dict[Any, dict[str, Any]] = {}
    for record in records:
        if record.value is None:
            continue  # tombstone: the delete event before it already removed the key
        value = orjson.loads(record.value)
        op = value["op"]
        assert op != "t", "these tests never truncate"
        assert record.key is not None
        key = key_of(record)
        if op == "d":
            rows.pop(key, None)
        else:
            rows[key] = value["after"]
    return rows


def key_of(record: Record) -> Any:
    """The key as a hashable value: the bare value of a one-column key."""
    assert record.key is not None
    values = tuple(orjson.loads(record.key).values())
    return values[0] if len(values) == 1 else values
