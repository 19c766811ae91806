"""Helpers to run a pipeline on the local servers and read its topics back."""

from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson
import yaml
from confluent_kafka import Consumer, Message
from confluent_kafka.admin import AdminClient

from cdc.app.daemon import run
from cdc.app.lifecycle import Stopper
from cdc.envelope import Envelope, decode_value
from cdc.settings import Settings
from cdc.settings_load import load_settings
from tests.integration.daemon_process import cdc_command


def cdc(*args: str) -> subprocess.CompletedProcess[str]:
    """A `cdc` command as a user runs it: exit status, stdout and stderr."""
    return subprocess.run(
        [*cdc_command(), *args], capture_output=True, text=True, timeout=300, check=False
    )


def topic_exists(bootstrap: str, topic: str) -> bool:
    return topic in AdminClient({"bootstrap.servers": bootstrap}).list_topics(timeout=10).topics


def write_config(path: Path, config: dict[str, Any]) -> Settings:
    path.write_text(yaml.safe_dump(config))
    return load_settings(path)


def command_config(
    tmp_path: Path, name: str, source: dict[str, Any], target: dict[str, Any], bootstrap: str
) -> Path:
    """pipeline.yaml for a `cdc` command run in the test (assess, schema, ...)."""
    path = tmp_path / "pipeline.yaml"
    config = {
        "name": name,
        "source": source,
        "kafka": {"bootstrap_servers": bootstrap},
        "target": target,
    }
    path.write_text(yaml.safe_dump(config))
    return path


def pipeline(
    tmp_path: Path,
    name: str,
    source: dict[str, Any],
    bootstrap: str,
    target: dict[str, Any] | None = None,
    transforms: list[dict[str, Any]] | None = None,
) -> Settings:
    """`<name>.yaml` in `tmp_path`: two partitions per topic, small snapshot chunks."""
    config: dict[str, Any] = {
        "name": name,
        "source": source,
        "kafka": {"bootstrap_servers": bootstrap, "partitions": 2},
        "metrics": {"listen": "127.0.0.1:0"},
        "snapshot": {"chunk_rows": 1000},
    }
    if target is not None:
        config["target"] = target
    if transforms is not None:
        config["transforms"] = transforms
    return write_config(tmp_path / f"{name}.yaml", config)


def pg_pipeline(
    tmp_path: Path,
    name: str,
    pg_dsn: str,
    bootstrap: str,
    tables: list[str] | dict[str, list[str]],
    target: dict[str, Any] | None = None,
    transforms: list[dict[str, Any]] | None = None,
    **extra: Any,
) -> Settings:
    source = {"type": "postgres", "dsn": pg_dsn, "tables": tables, **extra}
    return pipeline(tmp_path, name, source, bootstrap, target, transforms)


@contextmanager
def running(settings: Settings, role: str) -> Iterator[threading.Thread]:
    """The daemon in a thread, stopped (with a drain) on exit."""
    stopper = Stopper()
    errors: list[BaseException] = []

    def target() -> None:
        try:
            run(settings, role, stopper, grace_s=30)
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    try:
        yield thread
    finally:
        stopper.event.set()
        thread.join(60)
        if errors:
            raise errors[0]


def running_source(settings: Settings) -> Any:
    return running(settings, "source")


class TopicReader:
    """Reads a topic from the beginning, keeping what arrived across calls."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self._consumer = Consumer(
            {
                "bootstrap.servers": bootstrap,
                "group.id": f"test-reader-{time.time_ns()}",
                "auto.offset.reset": "earliest",
                "enable.auto.commit": False,
                "topic.metadata.refresh.interval.ms": 500,
            }
        )
        self._consumer.subscribe([topic])
        self.messages: list[Message] = []

    def read_until(self, count: int, timeout: float = 60) -> list[Message]:
        deadline = time.monotonic() + timeout
        while len(self.messages) < count and time.monotonic() < deadline:
            msg = self._consumer.poll(0.2)
            if msg is not None and msg.error() is None:
                self.messages.append(msg)
        return self.messages

    def read_keys(self, field: str, expected: set[Any], timeout: float = 60) -> set[Any]:
        """Read until every expected key value was seen (or time runs out)."""
        deadline = time.monotonic() + timeout
        seen = {orjson.loads(m.key()).get(field) for m in self.messages if m.key()}
        while not expected <= seen and time.monotonic() < deadline:
            msg = self._consumer.poll(0.2)
            if msg is not None and msg.error() is None:
                self.messages.append(msg)
                key = msg.key()
                if key:
                    seen.add(orjson.loads(key).get(field))
        return seen

    def envelopes(self) -> list[tuple[dict[str, Any] | None, Envelope]]:
        """(key, value) of every non-tombstone message, in partition order per key."""
        return [
            (orjson.loads(m.key()) if m.key() else None, decode_value(m.value()))
            for m in self.messages
            if m.value() is not None
        ]

    def close(self) -> None:
        self._consumer.close()


def mysql_pipeline(
    tmp_path: Path,
    name: str,
    mysql_dsn: str,
    bootstrap: str,
    tables: list[str],
    target: dict[str, Any] | None = None,
    **extra: Any,
) -> Settings:
    source = {"type": "mysql", "dsn": mysql_dsn, "tables": tables, **extra}
    return pipeline(tmp_path, name, source, bootstrap, target)


def wait_until(predicate: Any, timeout: float = 90, every: float = 0.5) -> bool:
    """Poll `predicate` until it holds; its last answer."""
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(every)
